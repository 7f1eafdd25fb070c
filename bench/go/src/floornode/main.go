// Command floornode is the Go floor of the cluster benchmarks: a
// do-nothing net/http server answering every request with the same fixed
// body, the Go twin of peercache-bench's `floor`.
//
//	floornode --listen 127.0.0.1:9100 [--body-size 100]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	listen := flag.String("listen", "", "address to listen on")
	size := flag.Int("body-size", 100, "length of the fixed answer")
	flag.Parse()
	if *listen == "" || *size < 0 {
		fmt.Fprintln(os.Stderr, "floornode: --listen is required and --body-size must be >= 0")
		os.Exit(2)
	}
	body := bytes.Repeat([]byte("x"), *size)
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(body)
	})
	fmt.Fprintf(os.Stderr, "floornode listening on %s\n", *listen)
	log.Fatal(http.ListenAndServe(*listen, handler))
}
