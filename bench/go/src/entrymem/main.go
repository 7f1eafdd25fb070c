// Command entrymem is the Go counterpart of bench/src/bin/entrymem.rs:
// fills one golang/groupcache group with N entries through Get and prints
// the growth of the resident set beyond len(key)+len(value), per entry,
// after a full garbage collection returned what it could to the kernel.
//
// Build offline in GOPATH mode:
//
//	GO111MODULE=off GOPATH=$PWD/bench/go:/usr/share/gocode go run entrymem
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/golang/groupcache"
)

func rss() uint64 {
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot read /proc/self/status (Linux only):", err)
		os.Exit(1)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := s.Text(); strings.HasPrefix(line, "VmRSS:") {
			rest := strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(rest, "kB")), 10, 64)
			return kb * 1024
		}
	}
	fmt.Fprintln(os.Stderr, "no VmRSS line in /proc/self/status")
	os.Exit(1)
	return 0
}

func key(i, n int) string {
	k := fmt.Sprintf("%08d", i)
	for len(k) < n {
		k += "k"
	}
	return k
}

func main() {
	entries := flag.Int("entries", 1000000, "entries to fill")
	keyBytes := flag.Int("key-bytes", 20, "length of each key (at least 8)")
	valueBytes := flag.Int("value-bytes", 12, "length of each value")
	flag.Parse()
	value := make([]byte, *valueBytes)
	g := groupcache.NewGroup("entrymem", 1<<62, groupcache.GetterFunc(
		func(_ context.Context, _ string, dest groupcache.Sink) error {
			return dest.SetBytes(value)
		}))
	var out []byte
	_ = g.Get(context.Background(), "warm-up", groupcache.AllocatingByteSliceSink(&out))
	before := rss()
	for i := 0; i < *entries; i++ {
		if err := g.Get(context.Background(), key(i, *keyBytes), groupcache.AllocatingByteSliceSink(&out)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	after := rss()
	if items := g.CacheStats(groupcache.MainCache).Items; items != int64(*entries+1) {
		fmt.Fprintf(os.Stderr, "the cache holds %d entries, not %d\n", items, *entries+1)
		os.Exit(1)
	}
	accounted := float64(*entries * (*keyBytes + *valueBytes))
	growth := float64(after - before)
	fmt.Printf("golang/groupcache: %d entries of %d+%d bytes: RSS grew %.1f MiB, %.1f bytes per entry beyond the accounted %d\n",
		*entries, *keyBytes, *valueBytes, growth/(1024*1024), (growth-accounted)/float64(*entries), *keyBytes+*valueBytes)
}
