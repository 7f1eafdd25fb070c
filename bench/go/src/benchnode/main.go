// Command benchnode is one node of a golang/groupcache cluster for the
// side-by-side benchmark harness: a group with a deterministic, counted
// loader, its HTTPPool and two small endpoints (/get and /stats) on one
// plain net/http server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang/groupcache"
)

// config holds the validated command line.
type config struct {
	self       string
	peers      []string
	listen     string
	group      string
	cacheBytes int64
	valueSize  int
	loadDelay  time.Duration
	hotCache   bool
	origin     string
}

// usageError is a command-line error; it names the offending flag.
type usageError struct {
	flag string
	msg  string
}

func (e *usageError) Error() string { return "--" + e.flag + ": " + e.msg }

// errReported is a flag-parsing error the flag package has already printed.
type errReported struct{ err error }

func (e errReported) Error() string { return e.err.Error() }
func (e errReported) Unwrap() error { return e.err }

// parseFlags parses and validates args (without the program name).
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("benchnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	self := fs.String("self", "", "this node's base URL, e.g. http://127.0.0.1:9001")
	peers := fs.String("peers", "", "all nodes' base URLs including self, comma-separated")
	listen := fs.String("listen", "", "address to listen on, e.g. 127.0.0.1:9001")
	group := fs.String("group", "bench", "group name")
	cacheBytes := fs.Int64("cache-bytes", 64<<20, "groupcache cacheBytes")
	valueSize := fs.Int("value-size", 100, "value length in bytes")
	loadDelay := fs.Duration("load-delay", 0, "time the loader sleeps before producing a value, e.g. 300ms")
	hotCache := fs.Bool("hot-cache", true, "accepted for parity; golang/groupcache's hot cache cannot be disabled")
	origin := fs.String("origin", "", "load values with GET <origin><key> (a 200's body; anything else is a load error) instead of making them")
	if err := fs.Parse(args); err != nil {
		// The flag package has already printed the error (naming the flag) and the usage.
		return nil, errReported{err}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	c := &config{
		listen:     *listen,
		group:      *group,
		cacheBytes: *cacheBytes,
		valueSize:  *valueSize,
		loadDelay:  *loadDelay,
		hotCache:   *hotCache,
		origin:     *origin,
	}
	var err error
	if c.self, err = normalizeURL(*self); err != nil {
		return nil, &usageError{"self", err.Error()}
	}
	if strings.TrimSpace(*peers) == "" {
		return nil, &usageError{"peers", "must list at least one base URL (including --self)"}
	}
	seen := make(map[string]bool)
	for _, p := range strings.Split(*peers, ",") {
		u, err := normalizeURL(strings.TrimSpace(p))
		if err != nil {
			return nil, &usageError{"peers", fmt.Sprintf("%q: %v", p, err)}
		}
		if seen[u] {
			return nil, &usageError{"peers", fmt.Sprintf("%q is listed twice", u)}
		}
		seen[u] = true
		c.peers = append(c.peers, u)
	}
	if !seen[c.self] {
		return nil, &usageError{"peers", fmt.Sprintf("must include --self %q", c.self)}
	}
	if c.listen == "" {
		return nil, &usageError{"listen", "is required, e.g. 127.0.0.1:9001"}
	}
	if _, port, err := net.SplitHostPort(c.listen); err != nil {
		return nil, &usageError{"listen", err.Error()}
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, &usageError{"listen", fmt.Sprintf("bad port %q", port)}
	}
	if c.group == "" || strings.Contains(c.group, "/") {
		return nil, &usageError{"group", "must be non-empty and contain no '/'"}
	}
	if c.cacheBytes < 0 {
		return nil, &usageError{"cache-bytes", "must be >= 0"}
	}
	if c.valueSize < 1 {
		return nil, &usageError{"value-size", "must be >= 1"}
	}
	if c.loadDelay < 0 {
		return nil, &usageError{"load-delay", "must not be negative"}
	}
	return c, nil
}

// normalizeURL checks that s is an http(s) base URL with a host and no
// path, query or fragment, and returns it without a trailing slash (the
// HTTPPool appends "/_groupcache/" to it and compares it with --self).
func normalizeURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("is required, e.g. http://127.0.0.1:9001")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("%q: must be a base URL like http://host:port", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// makeValue is the deterministic value of key: "v:"+key repeated and cut
// to exactly size bytes.
func makeValue(key string, size int) []byte {
	unit := "v:" + key
	return []byte(strings.Repeat(unit, (size+len(unit)-1)/len(unit))[:size])
}

type cacheStatsJSON struct {
	Bytes     int64 `json:"bytes"`
	Items     int64 `json:"items"`
	Gets      int64 `json:"gets"`
	Hits      int64 `json:"hits"`
	Evictions int64 `json:"evictions"`
}

type statsJSON struct {
	Self           string         `json:"self"`
	Group          string         `json:"group"`
	Loads          int64          `json:"loads"`
	Gets           int64          `json:"gets"`
	CacheHits      int64          `json:"cache_hits"`
	PeerLoads      int64          `json:"peer_loads"`
	PeerErrors     int64          `json:"peer_errors"`
	LoadsDeduped   int64          `json:"loads_deduped"`
	LocalLoads     int64          `json:"local_loads"`
	LocalLoadErrs  int64          `json:"local_load_errs"`
	ServerRequests int64          `json:"server_requests"`
	MainCache      cacheStatsJSON `json:"main_cache"`
	HotCache       cacheStatsJSON `json:"hot_cache"`
}

func cacheStats(s groupcache.CacheStats) cacheStatsJSON {
	return cacheStatsJSON{Bytes: s.Bytes, Items: s.Items, Gets: s.Gets, Hits: s.Hits, Evictions: s.Evictions}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if !errors.As(err, new(errReported)) {
			fmt.Fprintf(os.Stderr, "benchnode: %v\n", err)
		}
		return 2
	}
	logger := log.New(os.Stderr, "", 0)
	if !cfg.hotCache {
		logger.Printf("warning: --hot-cache=false ignored: golang/groupcache's hot cache cannot be disabled (it has no option for it); continuing with it enabled")
	}

	// Loader invocations, counted before the delay so that a load in
	// progress is already visible.
	var loads atomic.Int64
	group := groupcache.NewGroup(cfg.group, cfg.cacheBytes, groupcache.GetterFunc(
		func(_ context.Context, key string, dest groupcache.Sink) error {
			loads.Add(1)
			if cfg.loadDelay > 0 {
				time.Sleep(cfg.loadDelay)
			}
			if cfg.origin != "" {
				return fromOrigin(cfg.origin+url.PathEscape(key), dest)
			}
			return dest.SetBytes(makeValue(key, cfg.valueSize))
		}))

	pool := groupcache.NewHTTPPoolOpts(cfg.self, &groupcache.HTTPPoolOptions{})
	pool.Set(cfg.peers...)
	http.Handle("/_groupcache/", pool)

	http.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		key := r.URL.Query().Get("key")
		if key == "" {
			http.Error(w, "missing key parameter", http.StatusBadRequest)
			return
		}
		var view groupcache.ByteView
		if err := group.Get(r.Context(), key, groupcache.ByteViewSink(&view)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(view.Len()))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			view.WriteTo(w)
		}
	})

	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s := &group.Stats
		body, err := json.Marshal(statsJSON{
			Self:           cfg.self,
			Group:          group.Name(),
			Loads:          loads.Load(),
			Gets:           s.Gets.Get(),
			CacheHits:      s.CacheHits.Get(),
			PeerLoads:      s.PeerLoads.Get(),
			PeerErrors:     s.PeerErrors.Get(),
			LoadsDeduped:   s.LoadsDeduped.Get(),
			LocalLoads:     s.LocalLoads.Get(),
			LocalLoadErrs:  s.LocalLoadErrs.Get(),
			ServerRequests: s.ServerRequests.Get(),
			MainCache:      cacheStats(group.CacheStats(groupcache.MainCache)),
			HotCache:       cacheStats(group.CacheStats(groupcache.HotCache)),
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(body, '\n'))
	})

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		logger.Printf("benchnode: listen %s: %v", cfg.listen, err)
		return 1
	}
	// No read/write timeouts on bodies: a load may legitimately take as
	// long as --load-delay. Headers and idle connections are bounded.
	srv := &http.Server{
		Handler:           nil, // http.DefaultServeMux
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          logger,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Printf("benchnode listening on %s", ln.Addr())

	select {
	case err := <-serveErr:
		logger.Printf("benchnode: serve: %v", err)
		return 1
	case <-ctx.Done():
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Printf("benchnode: shutdown: %v", err)
		srv.Close()
		return 1
	}
	logger.Printf("benchnode: shut down")
	return 0
}

// originClient fetches values for --origin, bounded like peercache's http
// source (5 s for the whole request).
var originClient = &http.Client{Timeout: 5 * time.Second}

// fromOrigin loads a value with GET target: a 200's body, else an error.
func fromOrigin(target string, dest groupcache.Sink) error {
	resp, err := originClient.Get(target)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("origin %s answered %s", target, resp.Status)
	}
	return dest.SetBytes(body)
}
