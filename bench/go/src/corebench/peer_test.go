package corebench

import (
	"io/ioutil"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"context"

	"github.com/golang/groupcache"
	pb "github.com/golang/groupcache/groupcachepb"
	"github.com/golang/protobuf/proto"
)

// The counterpart of peercache/benches/peer.rs: one peer fetch over
// loopback HTTP, as golang/groupcache's httpGetter makes it (a GET through
// http.DefaultTransport, the body read and unmarshalled as a GetResponse),
// served by an HTTPPool whose group has the key cached.
var (
	peerOnce sync.Once
	peerURL  string
)

func peerServer(b *testing.B) string {
	peerOnce.Do(func() {
		groupcache.NewGroup("peer", 64<<20, groupcache.GetterFunc(
			func(_ context.Context, key string, dest groupcache.Sink) error {
				return dest.SetBytes(value100)
			}))
		// No peers are set, so the serving pool loads every key locally.
		pool := groupcache.NewHTTPPoolOpts("http://unused", nil)
		server := httptest.NewServer(pool)
		peerURL = server.URL + "/_groupcache/peer/some-key"
	})
	if err := fetch(peerURL); err != nil {
		b.Fatal(err)
	}
	return peerURL
}

func fetch(url string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := ioutil.ReadAll(res.Body)
	if err != nil {
		return err
	}
	var out pb.GetResponse
	return proto.Unmarshal(body, &out)
}

func BenchmarkPeerFetch(b *testing.B) {
	url := peerServer(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := fetch(url); err != nil {
			b.Fatal(err)
		}
	}
}

// 16 concurrent fetchers (8 per core on 2 cores); ns/op is wall time per
// fetch, the inverse of throughput.
func BenchmarkPeerFetchParallel16(b *testing.B) {
	url := peerServer(b)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(p *testing.PB) {
		for p.Next() {
			if err := fetch(url); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
