package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// SessionsBucket is the JetStream KV bucket holding MCP session records.
const SessionsBucket = "AMS_MCP_SESSIONS"

// SessionTTL is how long a session record outlives its last change.
const SessionTTL = 24 * time.Hour

// Binding states of a session (spec 5.5).
const (
	stateNone   = ""       // never joined, or the last join failed
	stateJoined = "joined" // joined: a missing wire is re-joined on use
	stateLeft   = "left"   // ams_leave: no re-join until ams_join
	stateClosed = "closed" // a 4001 close (displaced, revoked): no re-join until ams_join
)

// convRef names a conversation and the link that admitted the session to
// it. The link token itself is never stored (spec 2.2): a re-join checks
// the link's revocation and expiry by id.
type convRef struct {
	ID      string    `json:"id"`
	NS      string    `json:"ns"`
	Alias   string    `json:"alias"`
	LinkID  string    `json:"link_id"`
	Expires time.Time `json:"expires,omitzero"`
}

// record is everything a gateway needs to serve a session it has never
// seen: the account fixed at initialize, the MCP handshake, and the
// binding to rebuild (spec 5.5 rehydration), with the cursor of what the
// session already got. Any gateway may update it (compare-and-set on the
// KV revision); Holder and Epoch name the gateway whose wire is current.
type record struct {
	// Route is "mcp" or "link"; Pre is the pre-bound conversation of the
	// magic-link route.
	Route string   `json:"route"`
	Pre   *convRef `json:"pre,omitempty"`
	// Account is the session's account ("" until a magic link gives an
	// anonymous one); Namespace is set for persistent accounts.
	Account   string `json:"account,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// BadCredential: an invalid Bearer was presented at initialize on
	// /mcp; account-needing tools answer invalid_credential.
	BadCredential bool `json:"bad_credential,omitempty"`
	// Init is the client's initialize params; Proto the negotiated
	// protocol version.
	Init  json.RawMessage `json:"init,omitempty"`
	Proto string          `json:"proto,omitempty"`

	// The binding.
	State         string            `json:"state,omitempty"`
	Conv          *convRef          `json:"conv,omitempty"`
	Name          string            `json:"name,omitempty"`
	Metadata      string            `json:"metadata,omitempty"`
	MetadataSet   bool              `json:"metadata_set,omitempty"`
	SelfSubscribe bool              `json:"self_subscribe,omitempty"`
	PeerIdentity  string            `json:"peer_identity,omitempty"`
	Filter        []string          `json:"filter,omitempty"`
	FilterSet     bool              `json:"filter_set,omitempty"`
	CloseCode     int               `json:"close_code,omitempty"`
	CloseReason   string            `json:"close_reason,omitempty"`
	Cursor        map[string]uint64 `json:"cursor,omitempty"`
	Holder        string            `json:"holder,omitempty"`
	Epoch         uint64            `json:"epoch,omitempty"`
	// Touched is refreshed while a push leg is open.
	Touched time.Time `json:"touched,omitzero"`
}

// errNoSession: no record under that id (never minted, deleted or expired).
var errNoSession = errors.New("no such MCP session")

// errConflict: the record changed since it was read.
var errConflict = errors.New("session record changed")

// store keeps session records in a KV bucket.
type store struct {
	kv jetstream.KeyValue
}

// openStore creates or updates the sessions bucket on the connection.
func openStore(ctx context.Context, nc *nats.Conn, replicas int, memory bool) (*store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	storage := jetstream.FileStorage
	if memory {
		storage = jetstream.MemoryStorage
	}
	if replicas == 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      SessionsBucket,
		Description: "AMS MCP sessions: account, binding and cursor, for any gateway to serve",
		History:     1,
		TTL:         SessionTTL,
		Storage:     storage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create sessions bucket: %w", err)
	}
	return &store{kv: kv}, nil
}

func (s *store) get(ctx context.Context, id string) (record, uint64, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, 0, errNoSession
	}
	if err != nil {
		return record{}, 0, fmt.Errorf("read session record: %w", err)
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return record{}, 0, fmt.Errorf("decode session record: %w", err)
	}
	return r, e.Revision(), nil
}

// create stores a new record; it fails if the id exists.
func (s *store) create(ctx context.Context, id string, r *record) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	rev, err := s.kv.Create(ctx, id, b)
	if err != nil {
		return 0, fmt.Errorf("create session record: %w", err)
	}
	return rev, nil
}

// put replaces the record if it is still at revision rev.
func (s *store) put(ctx context.Context, id string, r *record, rev uint64) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	n, err := s.kv.Update(ctx, id, b, rev)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return 0, errConflict
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, errConflict
		}
		return 0, fmt.Errorf("write session record: %w", err)
	}
	return n, nil
}

// update applies fn to the current record until the write wins. fn may
// return an error to stop without writing.
func (s *store) update(ctx context.Context, id string, fn func(r *record) error) (record, uint64, error) {
	for attempt := 0; ; attempt++ {
		r, rev, err := s.get(ctx, id)
		if err != nil {
			return r, 0, err
		}
		if err := fn(&r); err != nil {
			return r, rev, err
		}
		n, err := s.put(ctx, id, &r, rev)
		if err == nil {
			return r, n, nil
		}
		if !errors.Is(err, errConflict) || attempt == 20 {
			return r, 0, err
		}
	}
}

func (s *store) delete(ctx context.Context, id string) error {
	if err := s.kv.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete session record: %w", err)
	}
	return nil
}
