// go_echo_peer: a raw byte echo server on Go's standard library, the way the language
// teaches it: one goroutine per connection, a blocking-style Read/Write loop over a 16 KiB
// buffer owned by the goroutine (the runtime's netpoller turns it into epoll underneath).
// --threads sets GOMAXPROCS. TCP_NODELAY on (Go's default, set again explicitly). Any byte
// echo is a valid PING/ECHO peer (docs/PROTOCOL.md).
//
//	go_echo_peer [--addr 127.0.0.1:0] [--threads N]
//
// Prints "listening on HOST:PORT" on stderr; exits on SIGTERM/SIGINT (default action).
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"
)

const bufferBytes = 16 * 1024

func serve(c *net.TCPConn) {
	defer c.Close()
	c.SetNoDelay(true)
	buf := make([]byte, bufferBytes)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address host:port")
	threads := flag.Int("threads", 1, "GOMAXPROCS (OS threads running Go code at once)")
	flag.Parse()
	if *threads < 1 || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	runtime.GOMAXPROCS(*threads)
	ln, err := net.Listen("tcp4", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_echo_peer: listen %s: %v\n", *addr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "listening on %s\n", ln.Addr())
	tl := ln.(*net.TCPListener)
	for {
		c, err := tl.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond) // EMFILE and friends: back off, do not spin
			continue
		}
		go serve(c)
	}
}
