// Command hello is the plain application of the ambient demo
// (hack/demo-ambient.sh): an HTTP server, and with --get a client, that
// know nothing of Ward. The server answers every request with its name
// and the address the request came from, so the demo shows traffic
// reaching it through the node proxy.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	name := flag.String("name", "hello", "name to answer with")
	get := flag.String("get", "", "instead of serving, GET this URL, print the body and exit non-zero on any error")
	flag.Parse()
	if *get != "" {
		os.Exit(fetch(*get))
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s: hello %s\n", *name, r.RemoteAddr)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}

func fetch(url string) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	os.Stdout.Write(b)
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status, err)
		return 1
	}
	return 0
}
