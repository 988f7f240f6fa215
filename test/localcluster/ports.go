package localcluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// Ports for the components are picked below Linux's ephemeral range
// (32768-60999 by default), so that no outgoing connection holds one, and
// each is locked with flock(2) in a folder every slmops test process shares:
// go test starts several packages at once, each with its own cluster, and a
// port that one of them picked and released could otherwise go to another
// before the first's component binds it. Such a clash does not always show
// as a component that fails to start: a plain-HTTP health probe (etcd's,
// kwok's) answers from the other cluster's process, and the cluster comes up
// without a working kwok. A lock lasts as long as the process that took it.
var portRangeLow, portRangeHigh = 20000, 32000 // variables for a test

var (
	portsMu sync.Mutex
	// portLocks keeps the lock files open: closing one releases its lock.
	portLocks = map[int]*os.File{}
)

// ReservePorts reserves n distinct ports on 127.0.0.1 that no other slmops
// test process reserved and nothing listens on now, for this process's
// lifetime.
func ReservePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	dir := filepath.Join(os.TempDir(), "slmops-ports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("reserve ports: %w", err)
	}
	span := portRangeHigh - portRangeLow
	start := rand.IntN(span)
	ports := make([]int, 0, n)
	for i := 0; i < span && len(ports) < n; i++ {
		port := portRangeLow + (start+i)%span
		f, locked, err := lockPort(dir, port)
		if err != nil {
			return nil, err
		}
		if !locked {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			f.Close() // in use by something else: leave it
			continue
		}
		l.Close()
		portLocks[port] = f
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("reserve ports: only %d of %d free in %d-%d", len(ports), n, portRangeLow, portRangeHigh)
	}
	return ports, nil
}

// ReserveAddr is one reserved 127.0.0.1 address (ReservePorts).
func ReserveAddr() (string, error) {
	ports, err := ReservePorts(1)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])), nil
}

// lockPort takes the lock of port; locked is false when another process
// (or another reservation of this one) holds it.
func lockPort(dir string, port int) (f *os.File, locked bool, err error) {
	f, err = os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("reserve ports: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("reserve ports: lock %d: %w", port, err)
	}
	return f, true, nil
}
