// Package sysstats samples the machine and a run's processes for the
// system-stats records the service writes into every open run.
//
// A Sampler is shared by all runs: Host reads the machine once (CPU total
// and per core, load, memory, swap, disk I/O, the free space of the disk
// that holds the root, network, NVIDIA GPUs) and Processes reads only the
// processes of one run (its attached client pids and their descendants,
// the service itself left out: a client often starts it as its child).
// The service calls Host once per tick and Processes once per due run, so
// the cost of a tick grows with the runs only by their process part.
//
// # Keys
//
// Values are float64, keys are "/"-free dotted names with the unit in the
// name where it is not a percentage:
//
//	cpu.percent, cpu.N.percent       busy share since the previous sample, 0..100
//	load.1, load.5, load.15
//	memory.used_bytes, memory.available_bytes, memory.total_bytes, memory.percent
//	swap.used_bytes
//	disk.read_bytes_per_s, disk.write_bytes_per_s   whole disks, since the previous sample
//	disk.root.free_bytes, disk.root.total_bytes     the file system holding Options.Disk
//	network.recv_bytes_per_s, network.sent_bytes_per_s  every interface but loopback
//	gpu.N.utilization_percent, gpu.N.memory_used_bytes, gpu.N.memory_total_bytes,
//	gpu.N.temperature_c, gpu.N.power_w, gpu.N.sm_clock_mhz, gpu.N.memory_clock_mhz,
//	gpu.N.processes
//	proc.cpu_percent                 the run's processes, 100 = one core busy
//	proc.rss_bytes, proc.count
//	proc.gpu_memory_bytes            GPU memory the run's processes hold, where NVML tells
//
// Rates need two samples: the first sample after New has them over the time
// since New.
//
// # GPUs
//
// NVIDIA GPUs are read through NVML, loaded at run time (libnvidia-ml.so.1,
// with cgo): a machine without the driver has no GPU, and New logs that once.
// Options.GPUs replaces NVML, for tests and for machines with another
// source.
package sysstats
