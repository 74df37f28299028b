// Package mcpserver serves AMS over the Model Context Protocol (spec 5.5):
// Streamable HTTP on /mcp and on magic-link URLs (conversation pre-bound),
// and stdio (Stdio, for `ams mcp`), with the official Go SDK doing the
// JSON-RPC and SSE framing.
//
// # Sessions on any replica
//
// An MCP session is a record in the AMS_MCP_SESSIONS KV bucket, keyed by
// its id (minted at initialize): the account fixed at initialize, the
// initialize params, the binding (conversation and link id, stream name,
// metadata, self_subscribe, peer identity, filter, state), the cursor of
// what the session already got, and the holder (gateway, epoch) of its
// wire. Link tokens and credentials are not stored; a re-join re-checks
// the link's revocation and expiry by id.
//
// Every HTTP request is served by a short-lived SDK session connected for
// it with the state rebuilt from the record (mcp.ServerSessionState), so
// no request depends on where the previous one landed. A thin layer in
// front applies the transport checks and error bodies of spec 5.5 first.
//
// The wire is a hub connection (transport "mcp") on the gateway that last
// needed it. A tool call on another gateway makes that gateway the holder
// (compare-and-set on the record, epoch+1) and re-joins with the record's
// cursor: the hub's displace-and-resume keeps the stream_id, seq and list
// position, peers see nothing, and the old holder's connection, closed
// 4001 stream_displaced, finds the record names another holder and goes
// quietly. A 4001 close whose record still names its holder is a real
// displacement (or revocation): the session gets notifications/ams/closed
// and does not re-join until ams_join.
//
// Frames reach the client three ways: ams_recv drains the session buffer
// (1000 frames or 1 MiB, a truncation marker at a gap), create/join/send/
// set_metadata results carry up to 64 buffered frames ahead of the result
// (ride-along), and the push leg (GET) gets a copy of every frame: the
// holder publishes each to ams.mcp.push.<session id>, which the push leg,
// on any gateway, subscribes to. Frames the client got advance the wire's
// cursor, which is written to the record.
//
// # Locks and goroutines
//
// Server.mu guards the maps; session.op serialises binding changes of one
// session on this gateway; session.mu guards its wire; buffer.mu its
// entries. A wire has one pump goroutine (ended by the wire's end) and a
// hub close is classified by one goroutine. Push legs end with their
// request or at HTTP server shutdown.
package mcpserver
