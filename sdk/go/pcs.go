// Package flk is the Go SDK of FLK: it builds, signs and submits PCS (Proof-of-Computation Summaries,
// DESIGN §2, docs/protocol.md) with the standard library only.
package flk

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Protocol constants.
const (
	PCSSchema  = "fractal-lba-kakeya"
	PCSVersion = "0.1"
	MaxEpoch   = 1<<53 - 1
)

// DefaultScales are the box sizes of the reference agent.
var DefaultScales = []int{2, 4, 8, 16, 32}

// Regimes.
const (
	RegimeSticky    = "sticky"
	RegimeNonSticky = "non_sticky"
	RegimeMixed     = "mixed"
)

// FT holds the delivery facts of a PCS (not signed).
type FT struct {
	OutboxSeq   uint64   `json:"outbox_seq"`
	Degraded    bool     `json:"degraded"`
	Fallbacks   []string `json:"fallbacks"`
	ClockSkewMs int64    `json:"clock_skew_ms"`
}

// PCS is a Proof-of-Computation Summary as sent on the wire.
type PCS struct {
	PcsID      string           `json:"pcs_id"`
	Schema     string           `json:"schema"`
	Version    string           `json:"version"`
	ShardID    string           `json:"shard_id"`
	Epoch      uint64           `json:"epoch"`
	Attempt    int              `json:"attempt"`
	SentAt     string           `json:"sent_at"`
	Seed       uint64           `json:"seed"`
	Scales     []int            `json:"scales"`
	NJ         map[string]int64 `json:"N_j"`
	CohStar    float64          `json:"coh_star"`
	VStar      []float64        `json:"v_star"`
	DHat       float64          `json:"D_hat"`
	R          float64          `json:"r"`
	Regime     string           `json:"regime"`
	Budget     float64          `json:"budget"`
	MerkleRoot string           `json:"merkle_root"`
	Sig        string           `json:"sig,omitempty"`
	KeyID      string           `json:"key_id,omitempty"`
	VRFProof   string           `json:"vrf_proof,omitempty"`
	FT         *FT              `json:"ft,omitempty"`
}

// ComputePcsID is the lowercase hex SHA-256 of the UTF-8 of merkle_root|epoch|shard_id.
func ComputePcsID(merkleRoot string, epoch uint64, shardID string) (string, error) {
	if epoch > MaxEpoch {
		return "", fmt.Errorf("%w: epoch %d is above 2^53−1", ErrInvalidPCS, epoch)
	}
	if !utf8.ValidString(merkleRoot) || !utf8.ValidString(shardID) {
		return "", fmt.Errorf("%w: merkle_root and shard_id must be valid UTF-8", ErrInvalidPCS)
	}
	sum := sha256.Sum256([]byte(merkleRoot + "|" + strconv.FormatUint(epoch, 10) + "|" + shardID))
	return hex.EncodeToString(sum[:]), nil
}

// SigningPayload is the RFC 8785 canonical UTF-8 of the 8 signed fields, floats through Round9.
func SigningPayload(p *PCS) ([]byte, error) {
	if p.Epoch > MaxEpoch {
		return nil, fmt.Errorf("%w: epoch %d is above 2^53−1", ErrInvalidPCS, p.Epoch)
	}
	obj := map[string]any{
		"pcs_id":      p.PcsID,
		"merkle_root": p.MerkleRoot,
		"epoch":       p.Epoch,
		"shard_id":    p.ShardID,
	}
	for name, v := range map[string]float64{"D_hat": p.DHat, "coh_star": p.CohStar, "r": p.R, "budget": p.Budget} {
		r, err := Round9(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		obj[name] = r
	}
	return Canonicalize(obj)
}

// PayloadDigest is SHA-256 of the signing payload: the message that is signed.
func PayloadDigest(p *PCS) ([]byte, error) {
	payload, err := SigningPayload(p)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(payload)
	return sum[:], nil
}

// SignPCS sets Sig (and KeyID when the signer has one) in place.
func SignPCS(p *PCS, s Signer) error {
	digest, err := PayloadDigest(p)
	if err != nil {
		return err
	}
	p.Sig = s.Sign(digest)
	if s.KeyID() != "" {
		p.KeyID = s.KeyID()
	}
	return nil
}

// -- signals (DESIGN §2) -------------------------------------------------------------------------

// SignalParams are the regime thresholds and budget weights of a policy.
type SignalParams struct {
	StickyCohMin, StickyDMax, NonStickyDMin                    float64
	BudgetBase, BudgetAlpha, BudgetBeta, BudgetGamma, BudgetD0 float64
}

// DefaultParams are the built-in policy's.
var DefaultParams = SignalParams{
	StickyCohMin: 0.70, StickyDMax: 1.5, NonStickyDMin: 2.6,
	BudgetBase: 0.10, BudgetAlpha: 0.30, BudgetBeta: 0.50, BudgetGamma: 0.20, BudgetD0: 2.2,
}

// TheilSenSlope is the median of all pairwise slopes (x_j > x_i); an even count takes the mean of the
// middle two.
func TheilSenSlope(xs, ys []float64) (float64, error) {
	var slopes []float64
	for i := range xs {
		for j := range xs {
			if xs[j] > xs[i] {
				slopes = append(slopes, (ys[j]-ys[i])/(xs[j]-xs[i]))
			}
		}
	}
	if len(slopes) == 0 {
		return 0, fmt.Errorf("%w: at least two distinct scales are needed", ErrInvalidPCS)
	}
	sort.Float64s(slopes)
	mid := len(slopes) / 2
	if len(slopes)%2 == 1 {
		return slopes[mid], nil
	}
	return (slopes[mid-1] + slopes[mid]) / 2, nil
}

// DHat is the Theil–Sen slope of (log2 s, log2 N_j[s]).
func DHat(scales []int, nj map[string]int64) (float64, error) {
	xs := make([]float64, len(scales))
	ys := make([]float64, len(scales))
	for i, s := range scales {
		n, ok := nj[strconv.Itoa(s)]
		if !ok || n < 1 {
			return 0, fmt.Errorf("%w: N_j has no count >= 1 for scale %d", ErrInvalidPCS, s)
		}
		xs[i], ys[i] = math.Log2(float64(s)), math.Log2(float64(n))
	}
	return TheilSenSlope(xs, ys)
}

// RegimeOf classifies the signals: sticky, non_sticky or mixed.
func RegimeOf(cohStar, dHat float64, p SignalParams) string {
	if cohStar >= p.StickyCohMin && dHat <= p.StickyDMax {
		return RegimeSticky
	}
	if dHat >= p.NonStickyDMin {
		return RegimeNonSticky
	}
	return RegimeMixed
}

// BudgetOf is clamp(base + α(1 − r) + β·max(0, D̂ − D0) + γ·coh★, 0, 1).
func BudgetOf(cohStar, dHat, r float64, p SignalParams) float64 {
	raw := p.BudgetBase + p.BudgetAlpha*(1.0-r) + p.BudgetBeta*math.Max(0, dHat-p.BudgetD0) + p.BudgetGamma*cohStar
	return math.Min(1, math.Max(0, raw))
}

// Compressibility is len(zlib level 6)/len(raw), not clamped. Go's deflate may differ by a few bytes
// from zlib's; the server takes r as signed, so that is harmless (docs/protocol.md).
func Compressibility(raw []byte) (float64, error) {
	if len(raw) == 0 {
		return 0, fmt.Errorf("%w: raw data must not be empty", ErrInvalidPCS)
	}
	var buf bytes.Buffer
	w, _ := zlib.NewWriterLevel(&buf, 6)
	_, _ = w.Write(raw)
	_ = w.Close()
	return float64(buf.Len()) / float64(len(raw)), nil
}

// UTCNowRFC3339 is the current UTC time with a Z suffix and second precision.
func UTCNowRFC3339() string { return time.Now().UTC().Format("2006-01-02T15:04:05Z") }

// BuildInput is what BuildPCS needs: the data's identity, the agent's box counts and coherence.
type BuildInput struct {
	ShardID string
	Epoch   uint64
	// Events are the window's events, one Merkle leaf each; else Raw in 1 KiB chunks; else MerkleRoot.
	Events     [][]byte
	Raw        []byte
	MerkleRoot string
	Scales     []int // DefaultScales when nil
	NJ         map[string]int64
	CohStar    float64
	VStar      []float64
	Seed       uint64
	// R is the compressibility; computed from Raw (or the events joined with "\n") when nil.
	R      *float64
	Params *SignalParams // DefaultParams when nil
	FT     *FT
}

// BuildPCS returns an unsigned PCS whose D̂, regime, budget and pcs_id are computed as the server
// recomputes them. coh★ and v★ come from the agent.
func BuildPCS(in BuildInput) (*PCS, error) {
	scales := in.Scales
	if scales == nil {
		scales = DefaultScales
	}
	root := in.MerkleRoot
	switch {
	case in.Events != nil:
		root = hex.EncodeToString(MerkleRoot(in.Events))
	case in.Raw != nil:
		root = hex.EncodeToString(MerkleRoot(ChunkRaw(in.Raw)))
	case root == "":
		return nil, fmt.Errorf("%w: give Events, Raw or MerkleRoot", ErrInvalidPCS)
	}
	var r float64
	if in.R != nil {
		r = *in.R
	} else {
		raw := in.Raw
		if raw == nil {
			raw = bytes.Join(in.Events, []byte("\n"))
		}
		var err error
		if r, err = Compressibility(raw); err != nil {
			return nil, err
		}
	}
	params := DefaultParams
	if in.Params != nil {
		params = *in.Params
	}
	d, err := DHat(scales, in.NJ)
	if err != nil {
		return nil, err
	}
	id, err := ComputePcsID(root, in.Epoch, in.ShardID)
	if err != nil {
		return nil, err
	}
	ft := in.FT
	if ft == nil {
		ft = &FT{Fallbacks: []string{}}
	}
	nj := make(map[string]int64, len(in.NJ))
	for k, v := range in.NJ {
		nj[k] = v
	}
	return &PCS{
		PcsID: id, Schema: PCSSchema, Version: PCSVersion, ShardID: in.ShardID, Epoch: in.Epoch,
		Attempt: 1, SentAt: UTCNowRFC3339(), Seed: in.Seed, Scales: append([]int(nil), scales...), NJ: nj,
		CohStar: in.CohStar, VStar: append([]float64(nil), in.VStar...), DHat: d, R: r,
		Regime: RegimeOf(in.CohStar, d, params), Budget: BudgetOf(in.CohStar, d, r, params),
		MerkleRoot: root, FT: ft,
	}, nil
}
