package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MaxBodyBytes bounds every request body: a value of MaxValueLen bytes
// with room to spare for a CAS's JSON. Longer bodies are answered 413.
const MaxBodyBytes = MaxValueLen + 1024

// maxJoinBody bounds the body of POST /members.
const maxJoinBody = 4 << 10

// httpLimits bounds what clients can hold of a node's HTTP server. Zero
// fields take their value from defaultHTTPLimits.
type httpLimits struct {
	// ReadTimeout bounds reading one request, headers and body, from the
	// moment the connection is accepted or the previous response is sent
	// (a client sending its body slowly is cut off with it). Headers alone
	// get the smaller of ReadTimeout and 5s.
	ReadTimeout time.Duration
	// WriteTimeout bounds each request from the end of its headers to the
	// end of its response. Membership changes, which wait longer, extend
	// their own deadline (see API.extendWrite).
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no next request.
	IdleTimeout time.Duration
	// MaxConns caps the connections open at once; further connections wait
	// in the kernel's listen backlog (itself bounded) until one closes.
	MaxConns int
}

// defaultHTTPLimits are the limits of kv's HTTP servers. WriteTimeout
// exceeds the 5s that a request waits for its command.
var defaultHTTPLimits = httpLimits{
	ReadTimeout:  10 * time.Second,
	WriteTimeout: 15 * time.Second,
	IdleTimeout:  60 * time.Second,
	MaxConns:     1024,
}

// withDefaults returns l with zero fields set to their defaults.
func (l httpLimits) withDefaults() httpLimits {
	d := defaultHTTPLimits
	if l.ReadTimeout > 0 {
		d.ReadTimeout = l.ReadTimeout
	}
	if l.WriteTimeout > 0 {
		d.WriteTimeout = l.WriteTimeout
	}
	if l.IdleTimeout > 0 {
		d.IdleTimeout = l.IdleTimeout
	}
	if l.MaxConns > 0 {
		d.MaxConns = l.MaxConns
	}
	return d
}

// newHTTPServer returns a server of h with the limits l (defaults for its
// zero fields).
func newHTTPServer(h http.Handler, l httpLimits) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(l.ReadTimeout, 5*time.Second),
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// limitListener wraps a net.Listener so that at most cap connections
// accepted through it are open at once: Accept waits for a slot before
// accepting, so extra connections stay in the kernel's bounded backlog.
//
// Concurrency: safe for concurrent use; Close unblocks a waiting Accept.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// newLimitListener returns l limited to n open connections (n > 0).
func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then accepts a connection that frees its
// slot when closed. It returns net.ErrClosed once the listener is closed.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close closes the listener and wakes a waiting Accept.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// open returns the number of accepted connections not yet closed.
func (l *limitListener) open() int { return len(l.slots) }

// limitConn frees its listener slot on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// withJSONErrors serves mux, bounding every request body to MaxBodyBytes
// and answering in JSON (errorBody) where the router itself would answer
// in plain text: unknown paths (404) and methods (405, with its Allow
// header).
func withJSONErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		ew := &errorCatcher{ResponseWriter: w}
		mux.ServeHTTP(ew, r)
		if ew.status == 0 {
			return // not an error: a redirect to the canonical path
		}
		body := errorBody{Error: errorCode(ew.status), Message: http.StatusText(ew.status)}
		switch ew.status {
		case http.StatusNotFound:
			body.Message = fmt.Sprintf("no such resource: %s %s (see the API's routes)", r.Method, r.URL.Path)
		case http.StatusMethodNotAllowed:
			body.Message = fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, w.Header().Get("Allow"))
		}
		writeJSON(w, ew.status, body)
	})
}

// errorCatcher passes a response through unless its status is an error,
// whose status it records and whose body it drops.
type errorCatcher struct {
	http.ResponseWriter
	status int
}

func (e *errorCatcher) WriteHeader(code int) {
	if code >= 400 {
		e.status = code
		return
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *errorCatcher) Write(b []byte) (int, error) {
	if e.status != 0 {
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

// errorCode returns the JSON error code of an HTTP status that has no more
// specific one: its status text in snake case ("method_not_allowed").
func errorCode(status int) string {
	if status == http.StatusInternalServerError {
		return "internal"
	}
	text := http.StatusText(status)
	if text == "" {
		return "error"
	}
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-':
			b.WriteByte('_')
		}
	}
	return b.String()
}

// errUnauthorized is the message of a 401.
var errUnauthorized = errors.New(`this endpoint needs the cluster's token: send "Authorization: Bearer <token>"`)
