package benchkit

import (
	"fmt"
	"testing"
	"time"
)

// batchMessage is a batched server message of n token frames as the
// gateway writes them for the fan-out scenario.
func batchMessage(n int) []byte {
	b := []byte{'['}
	now := time.Now().UnixNano()
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		data := AppendData(nil, i%4, int64(i+1), now, 64)
		b = fmt.Appendf(b, `{"type":"token","stream_id":"str_0123456789abcdef01234567%02d","stream_name":"w%d","owner_account_id":"acc_01J00000000000000000","ts":"2026-11-26T09:00:00.123Z","data":"%s","seq":%d}`, i%4, i%4, data, i+1)
	}
	return append(b, ']')
}

// BenchmarkReadBatch is the kit reader's work per message of 256 tokens:
// split the array, parse each token and its data.
func BenchmarkReadBatch(b *testing.B) {
	msg := batchMessage(256)
	b.SetBytes(int64(len(msg)))
	var sum int64
	for b.Loop() {
		EachToken(msg, func(_ []byte, tok *Token) bool {
			if tok != nil {
				_, k, _, _ := ParseData(tok.Data)
				sum += tok.Seq + k
			}
			return true
		})
	}
	if sum == 0 {
		b.Fatal("no token parsed")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/token")
}
