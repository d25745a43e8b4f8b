package redirect_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/wardmesh/ward/redirect"
)

// helperEnv makes the test binary a dialer: it connects to the address in
// the variable, prints what the listener that answered wrote, and exits.
// The capture tests run it as other users (uid 1000, the proxy's 1337):
// the rules match a socket's owner, so only a process of that uid proves
// them.
const helperEnv = "WARD_REDIRECT_TEST_DIAL"

// srcEnv, with helperEnv, binds the dialer to this source address.
const srcEnv = "WARD_REDIRECT_TEST_SRC"

// installEnv makes the test binary run Install in its own namespace and
// print the error, if any.
const installEnv = "WARD_REDIRECT_TEST_INSTALL"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(dial(addr))
	}
	if os.Getenv(installEnv) != "" {
		if err := redirect.Install(redirect.DefaultConfig()); err != nil {
			fmt.Print(err)
		}
		os.Exit(0)
	}
	code := m.Run()
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

func dial(addr string) int {
	d := net.Dialer{Timeout: 5 * time.Second}
	if src := os.Getenv(srcEnv); src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Print(string(b))
	return 0
}
