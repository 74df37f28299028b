package hub

import (
	"fmt"
	"sync"
	"testing"
)

// Holders of one key exclude each other; another key is not held up by
// them; the table forgets keys nobody holds.
func TestKeyLocks(t *testing.T) {
	var k keyLocks
	unlockA := k.lock("a")
	// Another key is free while "a" is held (a striped lock could map
	// both to one stripe).
	for i := 0; i < 1000; i++ {
		k.lock(fmt.Sprint("other-", i))()
	}
	got, released := make(chan struct{}), make(chan struct{})
	go func() {
		u := k.lock("a")
		close(got)
		u()
		close(released)
	}()
	select {
	case <-got:
		t.Fatal("a second holder of a key got it while it was held")
	default:
	}
	unlockA()
	<-got
	<-released
	var wg sync.WaitGroup
	counter := 0
	for i := 0; i < 50; i++ {
		wg.Go(func() {
			u := k.lock("c")
			counter++ // the race detector checks the exclusion
			u()
		})
	}
	wg.Wait()
	if counter != 50 {
		t.Fatalf("counter %d", counter)
	}
	k.mu.Lock()
	n := len(k.m)
	k.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d keys left in the table", n)
	}
}
