package ca

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wardmesh/ward/mesh"
)

// Join tokens look like "wardjt.<id>.<secret>": id is 16 hex characters
// naming the record, secret is 32 random bytes in unpadded base64url. Only
// the SHA-256 of the secret is stored.
const (
	joinTokenPrefix = "wardjt."
	tokenIDLen      = 16
	tokenSecretLen  = 43
)

// Token errors. The service reports all of them as Unauthenticated.
var (
	ErrTokenMalformed = errors.New("join token is malformed")
	ErrTokenUnknown   = errors.New("join token is unknown or already used")
	ErrTokenExpired   = errors.New("join token has expired")
)

// JoinToken is a parsed join token.
type JoinToken struct {
	ID     string
	Secret string
}

// IsJoinToken reports whether s has the join-token shape prefix.
func IsJoinToken(s string) bool { return strings.HasPrefix(s, joinTokenPrefix) }

// ParseJoinToken parses a join token string without looking it up.
func ParseJoinToken(s string) (JoinToken, error) {
	rest, ok := strings.CutPrefix(s, joinTokenPrefix)
	if !ok {
		return JoinToken{}, ErrTokenMalformed
	}
	id, secret, ok := strings.Cut(rest, ".")
	if !ok || len(id) != tokenIDLen || len(secret) != tokenSecretLen {
		return JoinToken{}, ErrTokenMalformed
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return JoinToken{}, ErrTokenMalformed
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return JoinToken{}, ErrTokenMalformed
	}
	return JoinToken{ID: id, Secret: secret}, nil
}

// String renders the token.
func (t JoinToken) String() string { return joinTokenPrefix + t.ID + "." + t.Secret }

// tokenRecord is the stored, hashed form of a join token.
type tokenRecord struct {
	Hash      string    `json:"sha256"`
	Namespace string    `json:"namespace"`
	Account   string    `json:"serviceAccount"`
	Expires   time.Time `json:"expires"`
	// Node, when set, makes this a node proxy's token: it enrols the
	// node identity bound to Node (NodeID) and Namespace/Account are
	// empty.
	Node string `json:"node,omitempty"`
}

// TokenStore keeps join tokens as one file per token (mode 0600) in a
// directory; a token is consumed by removing its file, which succeeds for
// exactly one caller even across processes.
type TokenStore struct {
	dir      string
	clock    Clock
	reserved *Reservation
}

// TokenDir is where a CA with state directory stateDir keeps join tokens.
func TokenDir(stateDir string) string { return filepath.Join(stateDir, "tokens") }

// NewTokenStore returns a store in dir.
func NewTokenStore(dir string, clock Clock) *TokenStore {
	if clock == nil {
		clock = SystemClock{}
	}
	return &TokenStore{dir: dir, clock: clock, reserved: DefaultReservation()}
}

// WithReservation makes the store refuse, at creation and at every check,
// tokens for identities r reserves (the default reserves ward-system/ward
// and its namespace). It returns s.
func (s *TokenStore) WithReservation(r *Reservation) *TokenStore {
	s.reserved = r
	return s
}

// Create mints a single-use token for namespace/account valid for ttl.
func (s *TokenStore) Create(namespace, account string, ttl time.Duration) (JoinToken, error) {
	if _, err := (mesh.Identity{TrustDomain: "example.org", Namespace: namespace, ServiceAccount: account}).SPIFFEID(); err != nil {
		return JoinToken{}, fmt.Errorf("create join token: %w", err)
	}
	if err := s.reserved.Check(namespace, account); err != nil {
		return JoinToken{}, fmt.Errorf("create join token: %w", err)
	}
	return s.mint(tokenRecord{Namespace: namespace, Account: account}, ttl)
}

// CreateNode mints a single-use token that enrols the node proxy of node
// (the identity NodeID names), valid for ttl.
func (s *TokenStore) CreateNode(node string, ttl time.Duration) (JoinToken, error) {
	if err := ValidNodeName(node); err != nil {
		return JoinToken{}, fmt.Errorf("create node join token: %w", err)
	}
	return s.mint(tokenRecord{Node: node}, ttl)
}

func (s *TokenStore) mint(rec tokenRecord, ttl time.Duration) (JoinToken, error) {
	if ttl <= 0 {
		return JoinToken{}, errors.New("create join token: ttl must be positive")
	}
	var idb [tokenIDLen / 2]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return JoinToken{}, fmt.Errorf("create join token: %w", err)
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return JoinToken{}, fmt.Errorf("create join token: %w", err)
	}
	t := JoinToken{ID: hex.EncodeToString(idb[:]), Secret: base64.RawURLEncoding.EncodeToString(sec[:])}
	rec.Hash, rec.Expires = hashSecret(t.Secret), s.clock.Now().Add(ttl).UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return JoinToken{}, fmt.Errorf("create join token: %w", err)
	}
	if err := writeFileAtomic(s.path(t.ID), b, 0o600); err != nil {
		return JoinToken{}, fmt.Errorf("create join token: %w", err)
	}
	return t, nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func (s *TokenStore) path(id string) string { return filepath.Join(s.dir, id+".json") }

// Check validates t without consuming it and returns the namespace and
// service account it was minted for. Expired tokens are deleted.
// A node token reports ErrTokenUnknown here (see check).
func (s *TokenStore) Check(t JoinToken) (namespace, account string, err error) {
	rec, err := s.check(t)
	if err != nil {
		return "", "", err
	}
	if rec.Node != "" {
		return "", "", ErrTokenUnknown
	}
	return rec.Namespace, rec.Account, nil
}

// check validates t without consuming it and returns its record: a
// workload's namespace and account, or a node's name.
func (s *TokenStore) check(t JoinToken) (tokenRecord, error) {
	b, err := os.ReadFile(s.path(t.ID))
	if errors.Is(err, os.ErrNotExist) {
		return tokenRecord{}, ErrTokenUnknown
	}
	if err != nil {
		return tokenRecord{}, fmt.Errorf("check join token %s: %w", t.ID, err)
	}
	var rec tokenRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return tokenRecord{}, fmt.Errorf("check join token %s: %w", t.ID, err)
	}
	if subtle.ConstantTimeCompare([]byte(rec.Hash), []byte(hashSecret(t.Secret))) != 1 {
		return tokenRecord{}, ErrTokenUnknown
	}
	if !s.clock.Now().Before(rec.Expires) {
		_ = os.Remove(s.path(t.ID))
		return tokenRecord{}, ErrTokenExpired
	}
	if rec.Node != "" {
		if rec.Namespace != "" || rec.Account != "" || ValidNodeName(rec.Node) != nil {
			return tokenRecord{}, fmt.Errorf("check join token %s: malformed node record", t.ID)
		}
		return rec, nil
	}
	// A record is only ever written by Create, which refuses reserved
	// identities; one naming them was written by someone else.
	if err := s.reserved.Check(rec.Namespace, rec.Account); err != nil {
		return tokenRecord{}, fmt.Errorf("check join token %s: %w", t.ID, err)
	}
	return rec, nil
}

// Consume marks t used. Exactly one concurrent caller succeeds.
func (s *TokenStore) Consume(t JoinToken) error {
	if err := os.Remove(s.path(t.ID)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ErrTokenUnknown
		}
		return fmt.Errorf("consume join token %s: %w", t.ID, err)
	}
	return nil
}
