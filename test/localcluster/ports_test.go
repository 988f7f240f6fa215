package localcluster

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The child half of TestReservedPortsAreNotHandedToAnotherProcess: it
// reserves ports while its parent holds some, and prints them.
func init() {
	if os.Getenv("SLMOPS_PORTS_CHILD") == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv("SLMOPS_PORTS_CHILD"))
	ports, err := ReservePorts(n)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	for _, p := range ports {
		os.Stdout.WriteString(strconv.Itoa(p) + "\n")
	}
	os.Exit(0)
}

func TestReservedPortsAreDistinctFreeAndBelowTheEphemeralRange(t *testing.T) {
	first, err := ReservePorts(40)
	if err != nil {
		t.Fatal(err)
	}
	second, err := ReservePorts(40)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range append(first, second...) {
		if seen[p] {
			t.Fatalf("port %d reserved twice in %v then %v", p, first, second)
		}
		seen[p] = true
		if p < portRangeLow || p >= portRangeHigh {
			t.Errorf("port %d outside %d-%d", p, portRangeLow, portRangeHigh)
		}
	}
	// Each is free to bind: the components bind them next.
	for _, p := range second {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("reserved port %d is not free: %v", p, err)
		}
		l.Close()
	}
}

func TestAPortInUseIsPassedOver(t *testing.T) {
	got, err := ReservePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	busy := got[0]
	release(got)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(busy)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	low, high := portRangeLow, portRangeHigh
	portRangeLow, portRangeHigh = busy, busy+1
	defer func() { portRangeLow, portRangeHigh = low, high }()
	if got, err := ReservePorts(1); err == nil {
		t.Fatalf("reserved %v, which a listener holds", got)
	} else if !strings.Contains(err.Error(), "only 0 of 1 free") {
		t.Fatalf("error %q does not say how many were free", err)
	}
}

// go test runs packages as separate processes that start clusters at once:
// a port one of them reserved must not go to another before it is bound.
func TestReservedPortsAreNotHandedToAnotherProcess(t *testing.T) {
	// Half the range, so that without the locks a child's 3,000 would
	// overlap them three times in four.
	mine, err := ReservePorts((portRangeHigh - portRangeLow) / 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release(mine) })
	held := map[int]bool{}
	for _, p := range mine {
		held[p] = true
	}
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SLMOPS_PORTS_CHILD=3000")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		got := strings.Fields(string(out))
		if len(got) != 3000 {
			t.Fatalf("child reserved %d ports, want 3000", len(got))
		}
		for _, s := range got {
			p, _ := strconv.Atoi(s)
			if held[p] {
				t.Fatalf("port %d went to another process while this one held it", p)
			}
		}
	}
}

// release gives back the reservations of ports (a test's, so that the
// process does not hold half the range).
func release(ports []int) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for _, p := range ports {
		if f := portLocks[p]; f != nil {
			f.Close()
			delete(portLocks, p)
		}
	}
}
