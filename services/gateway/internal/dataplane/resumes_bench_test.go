package dataplane

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
)

// BenchmarkResumeStorm replays the last 5 events of each of 556 streams
// whose events are interleaved in a file-backed events stream, 64 at once
// (the avalanche's shape on one gateway).
func BenchmarkResumeStorm(b *testing.B) {
	p := startPlane(b, Config{})
	ss := streamIDs(556)
	const n = 30
	for seq := uint64(1); seq <= n; seq++ {
		for _, s := range ss {
			subj, _ := subject.Event(conv, s)
			_ = p.PublishEvent(subj, frame.AppendToken(nil, &frame.Stream{ID: s}, time.Now(), "token text", seq), time.Time{}, nil)
		}
	}
	_ = p.Flush(context.Background())
	waitStored(b, p, ss, n)
	b.ResetTimer()
	for b.Loop() {
		sem := make(chan struct{}, 64)
		var wg sync.WaitGroup
		for i := range 5000 {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				subj, _ := subject.Event(conv, ss[i%len(ss)])
				k := 0
				if _, err := p.Replay(context.Background(), subj, n-4, nil, func([]byte, uint64) error { k++; return nil }); err != nil || k != 5 {
					panic(fmt.Sprint(k, err))
				}
			})
		}
		wg.Wait()
	}
}
