package gguf

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mapped is a validated GGUF file memory-mapped read-only: tensor data is
// read from the page cache on demand and shared by every process that maps
// the same file, so a model costs its size once per node, not once per pod,
// and never counts twice against the pod's heap.
type Mapped struct {
	*File
	// Path is the mapped file.
	Path string
	data []byte
}

// Open maps the file at path and validates its header and tensor layout.
func Open(path string) (*Mapped, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrInvalid, path)
	}
	if int64(int(st.Size())) != st.Size() {
		return nil, fmt.Errorf("%s is too large to map on this platform", path)
	}
	data, err := unix.Mmap(int(file.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	f, err := Read(bytes.NewReader(data), st.Size())
	if err != nil {
		_ = unix.Munmap(data)
		return nil, err
	}
	return &Mapped{File: f, Path: path, data: data}, nil
}

// Tensor returns the info and the bytes of the named tensor. The bytes are
// the mapping itself: read-only, valid until Close.
func (m *Mapped) Tensor(name string) (TensorInfo, []byte, bool) {
	for _, t := range m.Tensors {
		if t.Name == name {
			// Open checked the layout; this guards a File changed since, so
			// that no header number can slice outside the mapping.
			n := uint64(len(m.data))
			if m.DataOffset > n || t.Offset > n-m.DataOffset || t.Size > n-m.DataOffset-t.Offset {
				return TensorInfo{}, nil, false
			}
			start := m.DataOffset + t.Offset
			return t, m.data[start : start+t.Size : start+t.Size], true
		}
	}
	return TensorInfo{}, nil, false
}

// Close unmaps the file.
func (m *Mapped) Close() error {
	if m.data == nil {
		return nil
	}
	err := unix.Munmap(m.data)
	m.data = nil
	return err
}

// Size is the file's size in bytes.
func (m *Mapped) Size() int64 { return int64(len(m.data)) }
