// Package lossyfs is a FUSE filesystem for power-cut tests. It keeps every
// file and directory in memory twice: the volatile state, which is what
// programs see, and the durable state, which is what a disk would hold after
// the power went out. fsync (or fdatasync) of a file copies its data and size
// to the durable state; fsync of a directory copies its entries. PowerCut
// throws away everything else.
//
// The model is POSIX's promise, not any one filesystem's: a new file whose
// directory was never fsynced is gone after a cut even if the file itself was
// fsynced, a rename survives only once the directories were fsynced, and
// data written but not fsynced vanishes whole (no torn pages are modelled).
//
// Metadata other than data, size and directory entries (modes, times) is
// kept as if always durable. Locks (flock, fcntl) are left to the kernel, so
// they work between processes on one mount and end with it.
//
// It needs /dev/fuse and the right to mount (root); it mounts with mount(2)
// directly, so no fusermount binary is needed.
package lossyfs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is a mounted lossy filesystem. Its methods are safe for concurrent use.
type FS struct {
	dir string

	// mu protects everything below and every entry's state.
	mu      sync.Mutex
	root    *entry
	nextIno uint64
	server  *fuse.Server
	stats   Stats
}

// Stats counts what the filesystem saw since it was mounted first.
type Stats struct {
	FileSyncs int // fsync or fdatasync of a regular file
	DirSyncs  int // fsync of a directory
	Cuts      int // power cuts
}

// entry is one file, directory or socket. Its identity survives a cut; its
// contents fall back to the durable state.
type entry struct {
	ino  uint64
	mode uint32 // type and permission bits, as in stat(2)

	data, durable []byte // regular files

	kids, durableKids map[string]*entry // directories
}

func (e *entry) isDir() bool { return e.mode&syscall.S_IFMT == syscall.S_IFDIR }

// Mount mounts an empty lossy filesystem on dir, which must exist.
func Mount(dir string) (*FS, error) {
	f := &FS{dir: dir, nextIno: 1}
	f.root = f.newEntryLocked(syscall.S_IFDIR | 0o700)
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

// Dir returns the mount point.
func (f *FS) Dir() string { return f.dir }

// Stats returns the counts so far.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *FS) newEntryLocked(mode uint32) *entry {
	e := &entry{ino: f.nextIno, mode: mode}
	f.nextIno++
	if e.isDir() {
		e.kids, e.durableKids = map[string]*entry{}, map[string]*entry{}
	}
	return e
}

func (f *FS) mount() error {
	// The kernel may cache what it looked up: only it changes the tree
	// while mounted, and a cut unmounts first, which drops every cache.
	hour := time.Hour
	srv, err := fs.Mount(f.dir, &node{fsys: f, e: f.root}, &fs.Options{
		EntryTimeout: &hour,
		AttrTimeout:  &hour,
		MountOptions: fuse.MountOptions{
			FsName:            "lossyfs",
			Name:              "lossyfs",
			DirectMountStrict: true,
			// Several processes (the service, readers) share the mount.
			AllowOther:     true,
			MaxBackground:  64,
			DisableXAttrs:  true,
			SingleThreaded: false,
		},
	})
	if err != nil {
		return fmt.Errorf("mount lossyfs on %s: %w", f.dir, err)
	}
	f.mu.Lock()
	f.server = srv
	f.mu.Unlock()
	return nil
}

// unmount detaches the filesystem; processes still using it must be gone.
func (f *FS) unmount() error {
	f.mu.Lock()
	srv := f.server
	f.server = nil
	f.mu.Unlock()
	if srv == nil {
		return nil
	}
	var err error
	for range 50 {
		if err = srv.Unmount(); err == nil {
			break
		}
		// EBUSY while the kernel finishes releasing files of a process
		// that was just killed.
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		// Detach lazily so that the next mount does not stack on it.
		if derr := syscall.Unmount(f.dir, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("unmount lossyfs %s: %w (lazy: %v)", f.dir, err, derr)
		}
	}
	srv.Wait()
	return nil
}

// PowerCut unmounts the filesystem, drops everything that was not fsynced and
// mounts it again. Every process that used the mount must be dead first (kill
// it with SIGKILL and wait for it): a cut happens to the whole machine.
func (f *FS) PowerCut() error {
	if err := f.unmount(); err != nil {
		return err
	}
	f.mu.Lock()
	f.stats.Cuts++
	seen := map[*entry]bool{}
	var revert func(e *entry)
	revert = func(e *entry) {
		if seen[e] {
			return
		}
		seen[e] = true
		if e.isDir() {
			e.kids = maps.Clone(e.durableKids)
			for _, k := range e.kids {
				revert(k)
			}
			return
		}
		e.data = slices.Clone(e.durable)
	}
	revert(f.root)
	f.mu.Unlock()
	return f.mount()
}

// Close unmounts the filesystem.
func (f *FS) Close() error { return f.unmount() }

// node is the kernel-facing side of an entry for one mount.
type node struct {
	fs.Inode
	fsys *FS
	e    *entry
}

var (
	_ fs.NodeLookuper  = (*node)(nil)
	_ fs.NodeGetattrer = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeReader    = (*node)(nil)
	_ fs.NodeWriter    = (*node)(nil)
	_ fs.NodeFsyncer   = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeMkdirer   = (*node)(nil)
	_ fs.NodeMknoder   = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRmdirer   = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
	_ fs.NodeReaddirer = (*node)(nil)
	_ fs.NodeStatfser  = (*node)(nil)
)

func (n *node) child(ctx context.Context, e *entry, out *fuse.EntryOut) *fs.Inode {
	fillAttr(e, &out.Attr)
	return n.NewInode(ctx, &node{fsys: n.fsys, e: e}, fs.StableAttr{Mode: e.mode & syscall.S_IFMT, Ino: e.ino})
}

func fillAttr(e *entry, a *fuse.Attr) {
	a.Ino = e.ino
	a.Mode = e.mode
	a.Nlink = 1
	if e.isDir() {
		a.Nlink = 2
	}
	a.Size = uint64(len(e.data))
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = 4096
	a.Uid, a.Gid = uint32(os.Getuid()), uint32(os.Getgid())
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	e, ok := n.e.kids[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	return n.child(ctx, e, out), 0
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	fillAttr(n.e, &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	if m, ok := in.GetMode(); ok {
		n.e.mode = n.e.mode&syscall.S_IFMT | m&0o7777
	}
	if sz, ok := in.GetSize(); ok {
		if n.e.isDir() {
			return syscall.EISDIR
		}
		n.e.data = resize(n.e.data, int(sz))
	}
	fillAttr(n.e, &out.Attr)
	return 0
}

func resize(b []byte, n int) []byte {
	if n <= len(b) {
		return b[:n]
	}
	return append(b, make([]byte, n-len(b))...)
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, 0
}

func (n *node) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	if off >= int64(len(n.e.data)) {
		return fuse.ReadResultData(nil), 0
	}
	c := copy(dest, n.e.data[off:])
	return fuse.ReadResultData(dest[:c]), 0
}

func (n *node) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	if end := int(off) + len(data); end > len(n.e.data) {
		n.e.data = resize(n.e.data, end)
	}
	copy(n.e.data[off:], data)
	return uint32(len(data)), 0
}

func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	if n.e.isDir() {
		n.e.durableKids = maps.Clone(n.e.kids)
		n.fsys.stats.DirSyncs++
		return 0
	}
	n.e.durable = slices.Clone(n.e.data)
	n.fsys.stats.FileSyncs++
	return 0
}

func (n *node) add(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	if _, ok := n.e.kids[name]; ok {
		return nil, syscall.EEXIST
	}
	e := n.fsys.newEntryLocked(mode)
	n.e.kids[name] = e
	return n.child(ctx, e, out), 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, errno := n.add(ctx, name, syscall.S_IFREG|mode&0o7777, out)
	return in, nil, 0, errno
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.add(ctx, name, syscall.S_IFDIR|mode&0o7777, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFSOCK, syscall.S_IFIFO, syscall.S_IFREG:
	default:
		return nil, syscall.EPERM
	}
	return n.add(ctx, name, mode, out)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	e, ok := n.e.kids[name]
	if !ok {
		return syscall.ENOENT
	}
	if e.isDir() {
		return syscall.EISDIR
	}
	delete(n.e.kids, name)
	return 0
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	e, ok := n.e.kids[name]
	if !ok {
		return syscall.ENOENT
	}
	if !e.isDir() {
		return syscall.ENOTDIR
	}
	if len(e.kids) > 0 {
		return syscall.ENOTEMPTY
	}
	delete(n.e.kids, name)
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if flags != 0 {
		return syscall.EINVAL // no RENAME_EXCHANGE or RENAME_NOREPLACE
	}
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	e, ok := n.e.kids[name]
	if !ok {
		return syscall.ENOENT
	}
	if old, ok := np.e.kids[newName]; ok {
		if old.isDir() != e.isDir() {
			return syscall.EISDIR
		}
		if old.isDir() && len(old.kids) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	delete(n.e.kids, name)
	np.e.kids[newName] = e
	return 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	names := slices.Collect(maps.Keys(n.e.kids))
	sort.Strings(names)
	list := make([]fuse.DirEntry, 0, len(names))
	for _, name := range names {
		e := n.e.kids[name]
		list = append(list, fuse.DirEntry{Name: name, Mode: e.mode & syscall.S_IFMT, Ino: e.ino})
	}
	return fs.NewListDirStream(list), 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = 1 << 24
	out.Bfree = 1 << 23
	out.Bavail = 1 << 23
	out.Files = 1 << 20
	out.Ffree = 1 << 19
	out.NameLen = 255
	return 0
}

// ErrUnavailable is returned by Available when this machine cannot mount a
// FUSE filesystem.
var ErrUnavailable = errors.New("lossyfs: FUSE unavailable")

// Available reports whether /dev/fuse can be opened, the first thing a mount
// needs.
func Available() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return f.Close()
}
