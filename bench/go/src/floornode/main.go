// Command floornode is the Go floor of the cluster benchmarks: a
// do-nothing net/http server answering every request with the same fixed
// body, the Go twin of peercache-bench's `floor`. With --upstream it is
// the second hop of a two-hop floor: every request is relayed to the
// floor at that address with net/http's client, its body read whole and
// answered.
//
//	floornode --listen 127.0.0.1:9100 [--body-size 100] [--upstream 127.0.0.1:9101]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
)

func main() {
	listen := flag.String("listen", "", "address to listen on")
	size := flag.Int("body-size", 100, "length of the fixed answer")
	upstream := flag.String("upstream", "", "relay every request to the floor at this address")
	flag.Parse()
	if *listen == "" || *size < 0 {
		fmt.Fprintln(os.Stderr, "floornode: --listen is required and --body-size must be >= 0")
		os.Exit(2)
	}
	body := bytes.Repeat([]byte("x"), *size)
	length := strconv.Itoa(len(body))
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", length)
		w.Write(body)
	})
	if *upstream != "" {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			res, err := client.Get("http://" + *upstream + r.URL.RequestURI())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer res.Body.Close()
			// One read into one buffer of the body's length.
			if res.ContentLength < 0 {
				http.Error(w, "no Content-Length upstream", http.StatusBadGateway)
				return
			}
			got := make([]byte, res.ContentLength)
			if _, err := io.ReadFull(res.Body, got); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(got)))
			w.Write(got)
		})
	}
	fmt.Fprintf(os.Stderr, "floornode listening on %s\n", *listen)
	log.Fatal(http.ListenAndServe(*listen, handler))
}
