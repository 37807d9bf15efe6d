// Command flk-pcs-jsonl is the Go side of the cross-language test (tests/sdk/test_cross_language.py):
// one JSON object per stdin line,
//
//	{"id": …, "input": {merkle_root, epoch, shard_id, D_hat, coh_star, r, budget[, pcs_id]},
//	 "alg": "hmac" | "ed25519", "key_hex": "…", "leaves_hex": ["…"]?}
//
// one JSON object per stdout line: {"id", "pcs_id", "payload_hex", "digest_hex", "sig"[, "merkle_root"]}
// or {"id", "error"}.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"flk"
)

type request struct {
	ID    json.RawMessage `json:"id"`
	Input struct {
		PcsID      *string `json:"pcs_id"`
		MerkleRoot string  `json:"merkle_root"`
		Epoch      uint64  `json:"epoch"`
		ShardID    string  `json:"shard_id"`
		DHat       float64 `json:"D_hat"`
		CohStar    float64 `json:"coh_star"`
		R          float64 `json:"r"`
		Budget     float64 `json:"budget"`
	} `json:"input"`
	Alg       string   `json:"alg"`
	KeyHex    string   `json:"key_hex"`
	LeavesHex []string `json:"leaves_hex"`
}

func handle(line []byte) map[string]any {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return map[string]any{"error": err.Error()}
	}
	out := map[string]any{"id": req.ID}
	fail := func(err error) map[string]any { return map[string]any{"id": req.ID, "error": err.Error()} }
	in := req.Input
	id, err := flk.ComputePcsID(in.MerkleRoot, in.Epoch, in.ShardID)
	if err != nil {
		return fail(err)
	}
	out["pcs_id"] = id
	p := &flk.PCS{PcsID: id, MerkleRoot: in.MerkleRoot, Epoch: in.Epoch, ShardID: in.ShardID,
		DHat: in.DHat, CohStar: in.CohStar, R: in.R, Budget: in.Budget}
	if in.PcsID != nil {
		p.PcsID = *in.PcsID
	}
	payload, err := flk.SigningPayload(p)
	if err != nil {
		return fail(err)
	}
	out["payload_hex"] = hex.EncodeToString(payload)
	digest, _ := flk.PayloadDigest(p)
	out["digest_hex"] = hex.EncodeToString(digest)
	key, err := hex.DecodeString(req.KeyHex)
	if err != nil {
		return fail(err)
	}
	var signer flk.Signer
	if req.Alg == flk.AlgEd25519 {
		signer, err = flk.NewEd25519Signer(key, "")
	} else {
		signer, err = flk.NewHMACSigner(key, "")
	}
	if err != nil {
		return fail(err)
	}
	out["sig"] = signer.Sign(digest)
	if req.LeavesHex != nil {
		leaves := make([][]byte, len(req.LeavesHex))
		for i, h := range req.LeavesHex {
			if leaves[i], err = hex.DecodeString(h); err != nil {
				return fail(err)
			}
		}
		out["merkle_root"] = hex.EncodeToString(flk.MerkleRoot(leaves))
	}
	return out
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for in.Scan() {
		if len(in.Bytes()) == 0 {
			continue
		}
		if err := enc.Encode(handle(in.Bytes())); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
