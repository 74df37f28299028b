package grpcapi

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	// The proto codec registers itself; codec delegates to it.
	_ "google.golang.org/grpc/encoding/proto"
)

// rawMessage receives a message's bytes undecoded. Connect reads client
// frames this way so that a frame the protobuf decoder refuses (bad wire
// format, invalid UTF-8 in a string) ends the call with 4400
// malformed_frame and its trailers, as a bad WebSocket frame does, instead
// of a bare INTERNAL status from gRPC.
type rawMessage struct {
	b []byte
}

// codec is the server's codec: protobuf for every message, except that a
// *rawMessage gets the bytes as they came.
type codec struct {
	proto encoding.CodecV2
}

func newCodec() codec { return codec{proto: encoding.GetCodecV2("proto")} }

func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawMessage); ok {
		r.b = data.Materialize()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (c codec) Name() string { return c.proto.Name() }
