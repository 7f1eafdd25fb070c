// Package corebench holds the Go counterparts of peercache's criterion
// benchmarks (peercache/benches/core.rs), run against golang/groupcache so
// both sides are measured on the same machine in the same session.
//
// Run with bench/go/run.sh (GOPATH mode, offline).
package corebench

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/golang/groupcache"
	"github.com/golang/groupcache/consistenthash"
)

var value100 = make([]byte, 100)

// Groups are registered globally in golang/groupcache and a benchmark
// function runs several times, so each group is made once.
var (
	hitOnce, missOnce   sync.Once
	hitGroup, missGroup *groupcache.Group
)

// hit is the group of the hit benchmarks, made once.
func hit() *groupcache.Group {
	hitOnce.Do(func() {
		hitGroup = groupcache.NewGroup("hit", 64<<20, groupcache.GetterFunc(
			func(_ context.Context, key string, dest groupcache.Sink) error {
				return dest.SetBytes(value100)
			}))
	})
	return hitGroup
}

func BenchmarkGroupGetHit(b *testing.B) {
	g := hit()
	var v groupcache.ByteView
	ctx := context.Background()
	if err := g.Get(ctx, "some-key", groupcache.ByteViewSink(&v)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := g.Get(ctx, "some-key", groupcache.ByteViewSink(&v)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFloorLockedMapGet(b *testing.B) {
	var mu sync.Mutex
	m := map[string][]byte{"some-key": value100}
	var sink []byte
	for i := 0; i < b.N; i++ {
		mu.Lock()
		sink = m["some-key"]
		mu.Unlock()
	}
	_ = sink
}

func BenchmarkGroupGetMissTrivialLoader(b *testing.B) {
	missOnce.Do(func() {
		missGroup = groupcache.NewGroup("miss", 1<<20, groupcache.GetterFunc(
			func(_ context.Context, key string, dest groupcache.Sink) error {
				return dest.SetBytes([]byte("value"))
			}))
	})
	g := missGroup
	keys := make([]string, 1000000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	var v groupcache.ByteView
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := g.Get(ctx, keys[i%len(keys)], groupcache.ByteViewSink(&v)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRingOwner(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	for _, peers := range []int{8, 32, 128, 512} {
		m := consistenthash.New(50, nil)
		for i := 0; i < peers; i++ {
			m.Add(fmt.Sprintf("http://10.0.%d.%d:8080", i/256, i%256))
		}
		b.Run(fmt.Sprintf("Golang/%d", peers), func(b *testing.B) {
			n := 0
			for i := 0; i < b.N; i++ {
				n += len(m.Get(keys[i&1023]))
			}
			_ = n
		})
	}
}

// BenchmarkGroupGetHitParallel is the hit on two goroutines at once (run
// with -cpu 2): wall time per get, like peercache's group_get_hit_2threads.
func BenchmarkGroupGetHitParallel(b *testing.B) {
	g := hit()
	ctx := context.Background()
	var warm groupcache.ByteView
	if err := g.Get(ctx, "some-key", groupcache.ByteViewSink(&warm)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var v groupcache.ByteView
		for pb.Next() {
			if err := g.Get(ctx, "some-key", groupcache.ByteViewSink(&v)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFloorLockedMapGetParallel is the locked map on two goroutines.
func BenchmarkFloorLockedMapGetParallel(b *testing.B) {
	var mu sync.Mutex
	m := map[string][]byte{"some-key": value100}
	b.RunParallel(func(pb *testing.PB) {
		var sink []byte
		for pb.Next() {
			mu.Lock()
			sink = m["some-key"]
			mu.Unlock()
		}
		_ = sink
	})
}
