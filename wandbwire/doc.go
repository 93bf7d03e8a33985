// Package wandbwire owns the wandb SDK's wire formats: the frames of its
// service socket and the .wandb transaction log. The messages themselves are
// the subset in proto/wandb/v1.
//
// # Socket frames
//
// Both directions carry frames of one byte 'W', a uint32 little-endian
// length and that many bytes of a serialized ServerRequest (SDK to service)
// or ServerResponse (service to SDK). Frames longer than MaxFrameBytes are
// refused rather than buffered.
//
// # .wandb files
//
// A file starts with a 7-byte header: ":W&B", uint16 little-endian 0xBEE1
// and version byte 0. The rest is the LevelDB log format, counted from the
// start of the file (the header sits in the first block): 32 KiB blocks of
// chunks, each a uint32 little-endian CRC-32 (IEEE) over the type byte and
// the payload, a uint16 little-endian payload length and the type byte
// (1 full, 2 first, 3 middle, 4 last). A block whose tail is shorter than a
// chunk header is padded with zeros. Each reassembled payload is one
// serialized Record.
//
// The Reader stops at the first damaged or truncated chunk with a
// *CorruptError that names the byte offset and the index of the record it
// could not read; every record before it was read intact.
package wandbwire
