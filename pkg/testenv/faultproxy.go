package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// Faults are what a FaultProxy does to the requests it receives. Fractions are between 0 and 1
// and apply in turn: a request is reset, else answered with a throttle, else with a server
// error, else delayed and forwarded. They are spread evenly, not at random, so that a run
// repeats: with Throttle 0.5 every second request is throttled.
type Faults struct {
	// Refuse closes the proxy's port (and every open connection): clients get "connection
	// refused", as from an endpoint that is down.
	Refuse bool
	// Reset is the fraction of requests whose connection is reset (TCP RST) before any answer.
	Reset float64
	// Throttle is the fraction answered HTTP 400 ThrottlingException, as AWS throttles.
	Throttle float64
	// ServerError is the fraction answered HTTP 500 InternalServiceError.
	ServerError float64
	// Delay holds every forwarded request this long first.
	Delay time.Duration
}

// Outcomes of a request at a FaultProxy.
const (
	OutcomeForwarded   = "forwarded"
	OutcomeReset       = "reset"
	OutcomeThrottled   = "throttled"
	OutcomeServerError = "server-error"
)

// ProxyRequest is one request a FaultProxy received.
type ProxyRequest struct {
	Time time.Time
	// Operation is the AWS JSON protocol's X-Amz-Target, e.g. "secretsmanager.GetSecretValue".
	Operation string
	// UserAgent tells the controller's calls (app/aws-secret-controller) from a test's own.
	UserAgent string
	Outcome   string
}

// FaultProxy is an HTTP proxy in front of an AWS endpoint (the emulator) that injects the faults
// AWS clients meet: refused connections, resets, throttling, server errors and slow answers.
// Point the client at URL; SetFaults changes the faults at any time.
type FaultProxy struct {
	// URL is the proxy's address, for BaseEndpoint or AWS_ENDPOINT_URL_SECRETS_MANAGER.
	URL string

	addr  string
	proxy *httputil.ReverseProxy

	mu       sync.Mutex
	faults   Faults
	server   *http.Server // nil while refusing, and once closed
	closed   bool
	n        map[string]int // requests so far for each fraction's turn
	requests []ProxyRequest
}

// NewFaultProxy starts a proxy to target (an http:// URL) on a free loopback port, with no
// faults. Close stops it.
func NewFaultProxy(target string) (*FaultProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	addr := freeAddr()
	if addr == "" {
		return nil, errors.New("no free port for the fault proxy")
	}
	p := &FaultProxy{URL: "http://" + addr, addr: addr, proxy: httputil.NewSingleHostReverseProxy(u), n: map[string]int{}}
	p.proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	if err := p.listen(); err != nil {
		return nil, err
	}
	return p, nil
}

// listen serves on the proxy's address. Called with mu held, or before the proxy is shared.
func (p *FaultProxy) listen() error {
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("fault proxy: %w", err)
	}
	p.server = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func(s *http.Server) { _ = s.Serve(l) }(p.server)
	return nil
}

// SetFaults changes what the proxy does from now on; the fractions count afresh. Refusing closes the port and every open
// connection; accepting again reopens the same port.
func (p *FaultProxy) SetFaults(f Faults) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("fault proxy: closed")
	}
	was := p.faults.Refuse
	p.faults = f
	// Fractions count from now: exactly floor(N*f) of the next N requests.
	p.n = map[string]int{}
	switch {
	case f.Refuse && !was:
		err := p.server.Close()
		p.server = nil
		return err
	case !f.Refuse && was:
		return p.listen()
	}
	return nil
}

// Requests returns every request received so far, in order.
func (p *FaultProxy) Requests() []ProxyRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProxyRequest(nil), p.requests...)
}

// Close stops the proxy.
func (p *FaultProxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.server == nil {
		return nil
	}
	err := p.server.Close()
	p.server = nil
	return err
}

// turn tells whether the next request of a kind falls in fraction f: requests n for which
// floor((n+1)f) > floor(nf), so that exactly floor(Nf) of the first N do. Called with mu held.
func (p *FaultProxy) turn(kind string, f float64) bool {
	if f <= 0 {
		return false
	}
	n := float64(p.n[kind])
	p.n[kind]++
	return math.Floor((n+1)*f) > math.Floor(n*f)
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	f := p.faults
	outcome := OutcomeForwarded
	switch {
	case p.turn("reset", f.Reset):
		outcome = OutcomeReset
	case p.turn("throttle", f.Throttle):
		outcome = OutcomeThrottled
	case p.turn("server-error", f.ServerError):
		outcome = OutcomeServerError
	}
	p.requests = append(p.requests, ProxyRequest{
		Time: time.Now(), Operation: r.Header.Get("X-Amz-Target"), UserAgent: r.Header.Get("User-Agent"), Outcome: outcome,
	})
	p.mu.Unlock()

	// The request body is read first in every case, as a server does before it answers.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	switch outcome {
	case OutcomeReset:
		reset(w)
	case OutcomeThrottled:
		awsError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
	case OutcomeServerError:
		awsError(w, http.StatusInternalServerError, "InternalServiceError", "An error occurred on the server side.")
	default:
		if f.Delay > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(f.Delay):
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		p.proxy.ServeHTTP(w, r)
	}
}

// awsError answers as an AWS JSON 1.1 service (Secrets Manager) does with an error.
func awsError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", randomToken())
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":%q,"message":%q}`, code, message)
}

// reset closes the request's connection with a TCP RST: the client reads "connection reset by
// peer".
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
