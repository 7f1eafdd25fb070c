// Command peercache-interop is a golang/groupcache node for peercache's
// interoperability tests: it serves the same groups as peercache-server
// (colors, echo) with golang/groupcache's own HTTPPool, so a cluster can mix
// Rust and Go nodes.
//
// Build (GOPATH mode, offline, with Debian's golang-github-golang-groupcache-dev):
//
//	GO111MODULE=off GOPROXY=off GOPATH=$PWD/interop/go:/usr/share/gocode \
//	    go build -o peercache-interop peercache-interop
//
// Endpoints: /_groupcache/ (the peer protocol), /color?name=NAME,
// /echo/KEY (the value of KEY in group echo is KEY), /stats (JSON: each
// group's groupcache.Stats), /cachestats (JSON: each group's main and hot
// groupcache.CacheStats, for the memory soak test).
//
// -cache-bytes sets each group's budget for main + hot cache (bytes).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/golang/groupcache"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	self := flag.String("self", "", "this node's base URL (default http://ADDR)")
	pool := flag.String("pool", "", "comma-separated base URLs of all peers, this node included")
	colorsFile := flag.String("colors", "", "the colour table: lines of NAME #RRGGBB, // comments")
	cacheBytes := flag.Int64("cache-bytes", 64<<20, "each group's budget for main + hot cache, in bytes")
	flag.Parse()
	if *self == "" {
		*self = "http://" + *addr
	}
	if *pool == "" {
		*pool = *self
	}
	table, err := readColors(*colorsFile)
	if err != nil {
		log.Fatalf("reading -colors: %v", err)
	}

	peers := groupcache.NewHTTPPool(*self)
	peers.Set(strings.Split(*pool, ",")...)

	colors := groupcache.NewGroup("colors", *cacheBytes, groupcache.GetterFunc(
		func(_ context.Context, name string, dest groupcache.Sink) error {
			hex, ok := table[name]
			if !ok {
				return fmt.Errorf("no colour named %q", name)
			}
			return dest.SetString(hex)
		}))
	echo := groupcache.NewGroup("echo", *cacheBytes, groupcache.GetterFunc(
		func(_ context.Context, key string, dest groupcache.Sink) error {
			return dest.SetString(key)
		}))

	http.HandleFunc("/color", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			http.Error(w, "missing name parameter", http.StatusBadRequest)
			return
		}
		var hex string
		if err := colors.Get(r.Context(), name, groupcache.StringSink(&hex)); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		fmt.Fprintln(w, hex)
	})
	http.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/echo/")
		var value []byte
		if err := echo.Get(r.Context(), key, groupcache.AllocatingByteSliceSink(&value)); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write(value)
	})
	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]*groupcache.Stats{
			"colors": &colors.Stats,
			"echo":   &echo.Stats,
		})
	})
	http.HandleFunc("/cachestats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		caches := map[string]map[string]groupcache.CacheStats{}
		for _, group := range []*groupcache.Group{colors, echo} {
			caches[group.Name()] = map[string]groupcache.CacheStats{
				"main": group.CacheStats(groupcache.MainCache),
				"hot":  group.CacheStats(groupcache.HotCache),
			}
		}
		json.NewEncoder(w).Encode(caches)
	})
	log.Printf("peercache-interop: %s serving, peers %s", *self, *pool)
	log.Fatal(http.ListenAndServe(*addr, nil))
}

func readColors(path string) (map[string]string, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	table := map[string]string{}
	lines := bufio.NewScanner(file)
	for lines.Scan() {
		line := strings.TrimSpace(lines.Text())
		if line == "" || strings.HasPrefix(line, "//") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s: line %q is not NAME #RRGGBB", path, line)
		}
		table[fields[0]] = fields[1]
	}
	return table, lines.Err()
}
