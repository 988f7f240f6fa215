package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// readinessTarget is where a readiness probe goes.
type readinessTarget struct {
	scheme, path     string // an HTTP GET, or
	tcp              bool   // a TCP connection
	port             int
	header           http.Header
	timeout          time.Duration
	success, failure int
	initialDelay     time.Duration // liveness only
	period           time.Duration // liveness only: readiness runs every probePeriod
}

func (p *podProcess) readinessTarget(ctr *corev1.Container) (*readinessTarget, error) {
	return probeTarget(ctr, ctr.ReadinessProbe)
}

// livenessTarget is where the liveness probe goes, and when it starts.
func (p *podProcess) livenessTarget(ctr *corev1.Container) (*readinessTarget, error) {
	t, err := probeTarget(ctr, ctr.LivenessProbe)
	if t != nil {
		t.initialDelay = time.Duration(ctr.LivenessProbe.InitialDelaySeconds) * time.Second
		// Its own period, as a kubelet's: a process is killed only after
		// failing that long, not after a moment of load.
		t.period = 10 * time.Second
		if p := ctr.LivenessProbe.PeriodSeconds; p > 0 {
			t.period = time.Duration(p) * time.Second
		}
	}
	return t, err
}

func probeTarget(ctr *corev1.Container, probe *corev1.Probe) (*readinessTarget, error) {
	if probe == nil {
		return nil, nil
	}
	t := &readinessTarget{timeout: time.Second, success: 1, failure: 3}
	if probe.TimeoutSeconds > 0 {
		t.timeout = time.Duration(probe.TimeoutSeconds) * time.Second
	}
	if probe.SuccessThreshold > 0 {
		t.success = int(probe.SuccessThreshold)
	}
	if probe.FailureThreshold > 0 {
		t.failure = int(probe.FailureThreshold)
	}
	switch {
	case probe.HTTPGet != nil:
		port, err := containerPort(ctr, probe.HTTPGet.Port)
		if err != nil {
			return nil, err
		}
		t.port, t.scheme, t.path = port, "http", probe.HTTPGet.Path
		if !strings.HasPrefix(t.path, "/") {
			t.path = "/" + t.path
		}
		if probe.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			t.scheme = "https"
		}
		t.header = http.Header{}
		for _, h := range probe.HTTPGet.HTTPHeaders {
			t.header.Add(h.Name, h.Value)
		}
	case probe.TCPSocket != nil:
		port, err := containerPort(ctr, probe.TCPSocket.Port)
		if err != nil {
			return nil, err
		}
		t.port, t.tcp = port, true
	default:
		return nil, errors.New("the process kubelet probes with httpGet or tcpSocket only")
	}
	return t, nil
}

// containerPort resolves a probe's port, a number or a containerPort's name.
func containerPort(ctr *corev1.Container, port intstr.IntOrString) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, cp := range ctr.Ports {
		if cp.Name == port.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("the probe's port %q names no containerPort", port.StrVal)
}

// probe probes readiness every probePeriod and sends each change, after the
// probe's success or failure threshold.
func (p *podProcess) probe(ctx context.Context, t *readinessTarget, changes chan<- bool) {
	tick := time.NewTicker(probePeriod)
	defer tick.Stop()
	ready, successes, failures := false, 0, 0
	for {
		if p.probeOnce(ctx, t) {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		if (!ready && successes >= t.success) || (ready && failures >= t.failure) {
			ready = !ready
			select {
			case changes <- ready:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *podProcess) probeOnce(ctx context.Context, t *readinessTarget) bool {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	addr := net.JoinHostPort(p.ip, strconv.Itoa(t.port))
	if t.tcp {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return false
		}
		_ = conn.Close()
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.scheme+"://"+addr+t.path, nil)
	if err != nil {
		return false
	}
	for name, values := range t.header {
		req.Header[name] = values
	}
	resp, err := p.k.probes.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// live probes liveness every period after the initial delay, and sends the
// count of failures once it reaches the failure threshold.
func (p *podProcess) live(ctx context.Context, t *readinessTarget, dead chan<- int) {
	if !sleep(ctx, t.initialDelay) {
		return
	}
	tick := time.NewTicker(t.period)
	defer tick.Stop()
	failures := 0
	for {
		if p.probeOnce(ctx, t) {
			failures = 0
		} else if failures++; failures >= t.failure {
			dead <- failures
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
