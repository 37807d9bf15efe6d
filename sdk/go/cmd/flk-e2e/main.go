// Command flk-e2e drives the client against a real server for tests/sdk/test_cross_language.py.
// Environment: FLK_URL, FLK_TENANT, FLK_KEY, FLK_ALG, FLK_EPOCH (first epoch to use). Argument: the
// scenario, "basic" (accepted, escalated, replayed, tampered) or "ratelimit" (three PCS in a row on a
// rate-limited tenant). Prints one JSON object.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"flk"
)

func pcsFor(epoch uint64) *flk.PCS {
	r := 0.9
	p, err := flk.BuildPCS(flk.BuildInput{
		ShardID: "go-e2e", Epoch: epoch,
		Events:  [][]byte{[]byte(fmt.Sprintf("event-%d-a", epoch)), []byte(fmt.Sprintf("event-%d-b", epoch))},
		NJ:      map[string]int64{"2": 4, "4": 16, "8": 60, "16": 200, "32": 400},
		CohStar: 0.42, VStar: []float64{0.6, 0.8}, Seed: 7, R: &r,
	})
	if err != nil {
		panic(err)
	}
	return p
}

func describe(err error) map[string]any {
	var e *flk.Error
	if !errors.As(err, &e) {
		panic(err)
	}
	kind := ""
	for name, k := range map[string]error{"ErrValidation": flk.ErrValidation, "ErrSignature": flk.ErrSignature,
		"ErrConflict": flk.ErrConflict, "ErrRateLimited": flk.ErrRateLimited, "ErrServer": flk.ErrServer, "ErrNetwork": flk.ErrNetwork} {
		if errors.Is(err, k) {
			kind = name
		}
	}
	return map[string]any{"error": kind, "status": e.Status, "code": e.Code, "attempts": e.Attempts}
}

func main() {
	ctx := context.Background()
	client := flk.NewClient(os.Getenv("FLK_URL"), os.Getenv("FLK_TENANT"), os.Getenv("FLK_KEY"), os.Getenv("FLK_ALG"))
	var retries []map[string]any
	client.OnRetry = func(i flk.RetryInfo) {
		retries = append(retries, map[string]any{"status": i.Status, "code": i.Code,
			"retryAfterMs": i.RetryAfter.Milliseconds(), "delayMs": i.Delay.Milliseconds()})
	}
	epoch, err := strconv.ParseUint(os.Getenv("FLK_EPOCH"), 10, 64)
	if err != nil {
		panic(err)
	}
	out := map[string]any{}
	switch os.Args[1] {
	case "basic":
		accepted := pcsFor(epoch)
		first, err := client.SubmitPCS(ctx, accepted)
		if err != nil {
			panic(err)
		}
		out["accepted"] = map[string]any{"status": first.Status, "accepted": first.Accepted, "replayed": first.Replayed,
			"attempts": first.Attempts, "recomputedDHat": first.RecomputedDHat, "dHat": accepted.DHat}
		again, err := client.SubmitPCS(ctx, accepted)
		if err != nil {
			panic(err)
		}
		a, _ := json.Marshal(first.Body)
		b, _ := json.Marshal(again.Body)
		out["replayed"] = map[string]any{"status": again.Status, "replayed": again.Replayed, "body_equal": string(a) == string(b)}
		off := pcsFor(epoch + 1)
		off.DHat -= 0.5 // outside the 0.15 tolerance (above would break d ≤ len(v_star))
		escalated, err := client.SubmitPCS(ctx, off)
		if err != nil {
			panic(err)
		}
		out["escalated"] = map[string]any{"status": escalated.Status, "escalated": escalated.Escalated, "reason": escalated.Reason}
		tampered := pcsFor(epoch + 2)
		if err := client.SignPCS(tampered); err != nil {
			panic(err)
		}
		tampered.Budget = math.Min(1, tampered.Budget+0.01)
		if _, err := client.SubmitPCS(ctx, tampered); err != nil {
			out["tampered"] = describe(err)
		} else {
			out["tampered"] = map[string]any{"error": "none"}
		}
	case "ratelimit":
		var subs []any
		for i := uint64(0); i < 3; i++ {
			retries = []map[string]any{}
			started := time.Now()
			res, err := client.SubmitPCS(ctx, pcsFor(epoch+i))
			var item map[string]any
			if err != nil {
				item = describe(err)
			} else {
				item = map[string]any{"status": res.Status, "attempts": res.Attempts}
			}
			item["elapsedMs"] = time.Since(started).Milliseconds()
			item["retries"] = retries
			subs = append(subs, item)
		}
		out["submissions"] = subs
	default:
		panic("unknown scenario " + os.Args[1])
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(out)
}
