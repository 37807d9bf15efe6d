package flk

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// Signing algorithms.
const (
	AlgHMAC    = "hmac"
	AlgEd25519 = "ed25519"
)

// A Signer turns a 32-byte payload digest into a standard base64 (padded) signature.
type Signer interface {
	Alg() string
	KeyID() string
	Sign(digest []byte) string
}

// HMACSigner signs with HMAC-SHA256 and a shared secret (the secret text's bytes, as issued).
type HMACSigner struct {
	secret []byte
	keyID  string
}

// NewHMACSigner returns an HMAC-SHA256 signer.
func NewHMACSigner(secret []byte, keyID string) (*HMACSigner, error) {
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: an HMAC secret must not be empty", ErrInvalidPCS)
	}
	return &HMACSigner{secret: append([]byte(nil), secret...), keyID: keyID}, nil
}

// Alg is "hmac".
func (s *HMACSigner) Alg() string { return AlgHMAC }

// KeyID is the key_id sent with the PCS ("" for none).
func (s *HMACSigner) KeyID() string { return s.keyID }

// Sign returns base64(HMAC-SHA256(secret, digest)).
func (s *HMACSigner) Sign(digest []byte) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write(digest)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Ed25519Signer signs with an Ed25519 private key; the server holds only the public key.
type Ed25519Signer struct {
	key   ed25519.PrivateKey
	keyID string
}

// NewEd25519Signer builds a signer from the 32-byte RFC 8032 seed.
func NewEd25519Signer(seed []byte, keyID string) (*Ed25519Signer, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: an Ed25519 seed is 32 bytes, got %d", ErrInvalidPCS, len(seed))
	}
	return &Ed25519Signer{key: ed25519.NewKeyFromSeed(seed), keyID: keyID}, nil
}

// NewEd25519SignerFromHex builds a signer from the seed's 64 hex digits, as `flk-agent keygen` writes it.
func NewEd25519SignerFromHex(seedHex string, keyID string) (*Ed25519Signer, error) {
	seed, err := hex.DecodeString(strings.TrimSpace(seedHex))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: an Ed25519 private key is a 32-byte seed written as 64 hex digits", ErrInvalidPCS)
	}
	return NewEd25519Signer(seed, keyID)
}

// Alg is "ed25519".
func (s *Ed25519Signer) Alg() string { return AlgEd25519 }

// KeyID is the key_id sent with the PCS ("" for none).
func (s *Ed25519Signer) KeyID() string { return s.keyID }

// PublicKey is the raw 32-byte public key to register with the server.
func (s *Ed25519Signer) PublicKey() []byte { return []byte(s.key.Public().(ed25519.PublicKey)) }

// PublicKeyBase64 is the public key as the server's configuration takes it.
func (s *Ed25519Signer) PublicKeyBase64() string {
	return base64.StdEncoding.EncodeToString(s.PublicKey())
}

// Sign returns base64(Ed25519-sign(private key, digest)).
func (s *Ed25519Signer) Sign(digest []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, digest))
}

// NewSigner builds a signer as the seed's clients pass keys: the HMAC secret text, or the Ed25519
// seed's 64 hex digits.
func NewSigner(alg, key, keyID string) (Signer, error) {
	switch alg {
	case AlgHMAC, "":
		return NewHMACSigner([]byte(key), keyID)
	case AlgEd25519:
		return NewEd25519SignerFromHex(key, keyID)
	}
	return nil, fmt.Errorf("%w: unknown signing algorithm %q (hmac or ed25519)", ErrInvalidPCS, alg)
}

// ReadSigningKeyFile reads a key file written by `make run` or `flk-agent keygen` (surrounding
// whitespace removed) and returns its signer.
func ReadSigningKeyFile(path, alg, keyID string) (Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return NewSigner(alg, strings.TrimSpace(string(data)), keyID)
}

// DecodeSignature strictly decodes standard base64 with padding.
func DecodeSignature(sig string) ([]byte, bool) {
	if strings.ContainsAny(sig, "\r\n") { // Go's decoder skips newlines, even in strict mode
		return nil, false
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(sig)
	return raw, err == nil
}

// VerifySignature checks sig over digest: key is the HMAC secret or the raw 32-byte Ed25519 public key.
func VerifySignature(alg string, key, digest []byte, sig string) (bool, error) {
	raw, ok := DecodeSignature(sig)
	switch alg {
	case AlgHMAC:
		if !ok {
			return false, nil
		}
		m := hmac.New(sha256.New, key)
		m.Write(digest)
		return hmac.Equal(m.Sum(nil), raw), nil
	case AlgEd25519:
		if !ok || len(raw) != ed25519.SignatureSize || len(key) != ed25519.PublicKeySize {
			return false, nil
		}
		return ed25519.Verify(ed25519.PublicKey(key), digest, raw), nil
	}
	return false, fmt.Errorf("%w: unknown signing algorithm %q", ErrInvalidPCS, alg)
}
