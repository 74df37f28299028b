// Package wire holds the frame, event and error types of the AMS wire
// protocol (PROTOCOL.md sections 3 to 5): the JSON bodies of the control
// plane, the server frames of the stream plane as Go values, the resume
// cursor, and the catalogue of error codes and close codes.
//
// The types mirror the JSON field for field. Objects the protocol treats as
// opaque (`metadata`, `stream_metadata`) are [encoding/json.RawMessage] and
// are never re-encoded; `string|null` fields are pointers; timestamps are
// [time.Time]. Decoding ignores unknown fields, as clients must.
//
// The Go SDK ([github.com/amsrouter/ams/pkg/ams]) produces these values;
// most programs only read them, in a type switch over the events of a
// session:
//
//	for ev := range session.Events() {
//		switch ev := ev.(type) {
//		case wire.Token:
//			fmt.Print(ev.Data)
//		case wire.StreamJoined:
//			fmt.Println(ev.StreamName, "joined")
//		}
//	}
package wire
