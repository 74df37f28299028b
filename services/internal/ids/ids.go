// Package ids mints and checks the identifiers and secrets of the AMS wire
// protocol (spec 2.1): time-ordered ids, credentials, derived stream and
// anonymous account ids, aliases and names.
package ids

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"regexp"
	"time"
)

// Crockford is the base-32 alphabet of TR20 ids.
const Crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Patterns of spec 2.1.
var (
	AccountIDRe      = regexp.MustCompile(`^acc_[0-9A-HJKMNP-TV-Z]{20}$`)
	AnonAccountIDRe  = regexp.MustCompile(`^acc_anon_[0-9a-f]{26}$`)
	ConversationIDRe = regexp.MustCompile(`^conv_[0-9A-HJKMNP-TV-Z]{20}$`)
	LinkIDRe         = regexp.MustCompile(`^lnk_[0-9A-HJKMNP-TV-Z]{20}$`)
	StreamIDRe       = regexp.MustCompile(`^str_[0-9a-f]{26}$`)
	CredentialRe     = regexp.MustCompile(`^ams_sk_[A-Za-z0-9_-]{43}$`)
	DefaultStreamRe  = regexp.MustCompile(`^stream-[A-Za-z0-9_-]{8}$`)
	RandomAliasRe    = regexp.MustCompile(`^[a-z]+-[a-z]+-[1-9][0-9]{3}$`)
	MCPSessionIDRe   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// TR20 returns 10 Crockford characters of the Unix time in milliseconds,
// most significant first, followed by 10 characters drawn uniformly from a
// CSPRNG.
func TR20(now time.Time) string {
	var b [20]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = Crockford[ms&31]
		ms >>= 5
	}
	var r [10]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic("ids: crypto/rand: " + err.Error())
	}
	for i, v := range r {
		// 256 is a multiple of 32: v&31 is uniform.
		b[10+i] = Crockford[v&31]
	}
	return string(b[:])
}

// NewAccountID returns a fresh `acc_` id.
func NewAccountID(now time.Time) string { return "acc_" + TR20(now) }

// NewConversationID returns a fresh `conv_` id.
func NewConversationID(now time.Time) string { return "conv_" + TR20(now) }

// NewLinkID returns a fresh `lnk_` id.
func NewLinkID(now time.Time) string { return "lnk_" + TR20(now) }

// NewCredential returns a fresh bearer credential: `ams_sk_` and the
// unpadded base64url of 32 CSPRNG bytes.
func NewCredential() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ids: crypto/rand: " + err.Error())
	}
	return "ams_sk_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// NewDefaultStreamName returns `stream-` and the base64url of 6 CSPRNG bytes.
func NewDefaultStreamName() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ids: crypto/rand: " + err.Error())
	}
	return "stream-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// NewMCPSessionID returns 32 CSPRNG bytes as lowercase hex.
func NewMCPSessionID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ids: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

var (
	adjectives = []string{"azure", "crimson", "golden", "silver", "jade", "amber", "ivory", "violet",
		"swift", "quiet", "brave", "keen", "clever", "gentle", "steady", "wild", "bright", "calm",
		"fair", "fierce", "kind", "light", "sharp", "warm"}
	nouns = []string{"falcon", "otter", "stag", "badger", "heron", "raven", "wolf", "hawk", "river",
		"mountain", "forest", "valley", "harbor", "meadow", "summit", "canyon", "pulse", "echo",
		"signal", "drift", "tide", "spark", "ember", "comet"}
)

func uniform(n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		panic("ids: crypto/rand: " + err.Error())
	}
	return v.Int64()
}

// NewRandomAlias returns `ADJ-NOUN-n` with n uniform in 1000..9999.
func NewRandomAlias() string {
	a := adjectives[uniform(int64(len(adjectives)))]
	n := nouns[uniform(int64(len(nouns)))]
	return a + "-" + n + "-" + itoa(1000+uniform(9000))
}

func itoa(v int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// Deriver computes the peppered derivations H(x) of spec 2.1. The pepper is
// a deployment secret shared by every gateway replica.
type Deriver struct{ pepper []byte }

// NewDeriver returns a Deriver for the given derivation pepper.
func NewDeriver(pepper []byte) *Deriver {
	return &Deriver{pepper: append([]byte(nil), pepper...)}
}

// H returns lowercase hex SHA-256 of pepper + ":" + x.
func (d *Deriver) H(x string) string {
	h := sha256.New()
	h.Write(d.pepper)
	h.Write([]byte{':'})
	h.Write([]byte(x))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// StreamID derives the id of (conversation, account, stream name).
func (d *Deriver) StreamID(conversationID, accountID, streamName string) string {
	return "str_" + d.H("stream|" + conversationID + "|" + accountID + "|" + streamName)[:26]
}

// AnonAccountID derives the anonymous account of a link.
func (d *Deriver) AnonAccountID(linkID string) string {
	return "acc_anon_" + d.H("anon-account|" + linkID)[:26]
}

// CredentialHasher computes HMAC-SHA-256(pepper, credential), the only form
// in which credentials are stored or looked up.
type CredentialHasher struct{ pepper []byte }

// NewCredentialHasher returns a hasher for the credential pepper.
func NewCredentialHasher(pepper []byte) *CredentialHasher {
	return &CredentialHasher{pepper: append([]byte(nil), pepper...)}
}

// Hash returns the lowercase hex HMAC of the credential.
func (c *CredentialHasher) Hash(credential string) string {
	m := hmac.New(sha256.New, c.pepper)
	m.Write([]byte(credential))
	return hex.EncodeToString(m.Sum(nil))
}

// Equal compares two hashes in constant time.
func Equal(a, b string) bool {
	return hmac.Equal([]byte(a), []byte(b))
}
