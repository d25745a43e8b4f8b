package ambient

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
)

// envApp makes the test binary an application instead: a list of
// kind:port servers (echo, http, sink, peer), run until killed.
const envApp = "WARD_AMBIENT_APP"

func TestMain(m *testing.M) {
	if spec := os.Getenv(envApp); spec != "" {
		runApps(spec)
		return
	}
	os.Exit(m.Run())
}

// runApps listens on every kind:port, prints "ready" and serves until the
// test kills the process. These are ordinary applications: nothing in
// them knows about the mesh.
func runApps(spec string) {
	for _, s := range strings.Split(spec, ",") {
		kind, port, _ := strings.Cut(s, ":")
		l, err := net.Listen("tcp", ":"+port)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		switch kind {
		case "echo":
			go acceptLoop(l, func(c net.Conn) { io.Copy(c, c) })
		case "sink":
			// Reads to EOF, then answers with the byte count.
			go acceptLoop(l, func(c net.Conn) {
				n, _ := io.Copy(io.Discard, bufio.NewReaderSize(c, 256<<10))
				fmt.Fprintf(c, "%d", n)
			})
		case "peer":
			// Answers with the address it sees the connection come from.
			go acceptLoop(l, func(c net.Conn) { io.WriteString(c, c.RemoteAddr().String()) })
		case "http":
			go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "hello from %s to %s", r.Host, r.RemoteAddr)
			}))
		default:
			fmt.Println("error: unknown app", kind)
			os.Exit(1)
		}
	}
	fmt.Println("ready")
	select {}
}

func acceptLoop(l net.Listener, h func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			h(c)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
		}()
	}
}
