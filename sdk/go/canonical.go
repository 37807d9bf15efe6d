package flk

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Round9 is the decimal with 9 fractional digits nearest to x's exact binary value, ties to even,
// read back as a float64 (DESIGN §2): Python's float(format(x, ".9f")).
func Round9(x float64) (float64, error) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, fmt.Errorf("%w: round9 needs a finite number, got %v", ErrInvalidPCS, x)
	}
	// FormatFloat with an explicit precision converts the exact binary value and rounds half to even.
	return strconv.ParseFloat(strconv.FormatFloat(x, 'f', 9, 64), 64)
}

// FormatNumber serialises a finite float64 as RFC 8785 §3.2.2.3 asks: ECMAScript's Number::toString
// (ES2015 7.1.12.1) over the shortest round-trip digits. strconv's 'g' switches to exponent form at
// other thresholds and writes "e+06"-style exponents, so the ES rules are applied here to the digits
// and exponent of strconv's shortest 'e' form.
func FormatNumber(x float64) (string, error) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "", fmt.Errorf("%w: RFC 8785 has no form for %v", ErrInvalidPCS, x)
	}
	if x == 0 {
		return "0", nil // also -0
	}
	sign := ""
	if x < 0 {
		sign = "-"
		x = -x
	}
	e := strconv.FormatFloat(x, 'e', -1, 64) // d[.ddd]e±XX, shortest digits that round-trip
	mant, expText, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, err := strconv.Atoi(expText)
	if err != nil {
		return "", err
	}
	k := len(digits) // number of significant digits
	n := exp + 1     // the decimal point sits after n digits: x = 0.digits × 10^n
	var out string
	switch {
	case k <= n && n <= 21:
		out = digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		out = digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		out = "0." + strings.Repeat("0", -n) + digits
	default:
		out = digits[:1]
		if k > 1 {
			out += "." + digits[1:]
		}
		if n-1 >= 0 {
			out += "e+" + strconv.Itoa(n-1)
		} else {
			out += "e-" + strconv.Itoa(1-n)
		}
	}
	return sign + out, nil
}

// QuoteString serialises a string as RFC 8785 §3.2.2.2 asks (minimal escaping, UTF-8 as is); a
// string that is not valid UTF-8 is refused.
func QuoteString(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: string is not valid UTF-8", ErrInvalidPCS)
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// lessUTF16 orders strings by their UTF-16 code units (RFC 8785 §3.2.3).
func lessUTF16(a, b string) bool {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}

// Canonicalize returns the RFC 8785 canonical JSON of a value built from nil, bool, string, float64,
// int, int64, uint64, []any and map[string]any.
func Canonicalize(v any) ([]byte, error) {
	var b strings.Builder
	if err := canon(&b, v); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

const maxSafeInteger = 1<<53 - 1

func canon(b *strings.Builder, v any) error {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		q, err := QuoteString(t)
		if err != nil {
			return err
		}
		b.WriteString(q)
	case float64:
		s, err := FormatNumber(t)
		if err != nil {
			return err
		}
		b.WriteString(s)
	case int:
		return canon(b, int64(t))
	case int64:
		if t > maxSafeInteger || t < -maxSafeInteger {
			return fmt.Errorf("%w: integer %d is outside ±(2^53−1)", ErrInvalidPCS, t)
		}
		b.WriteString(strconv.FormatInt(t, 10))
	case uint64:
		if t > maxSafeInteger {
			return fmt.Errorf("%w: integer %d is above 2^53−1", ErrInvalidPCS, t)
		}
		b.WriteString(strconv.FormatUint(t, 10))
	case []any:
		b.WriteByte('[')
		for i, item := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := canon(b, item); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			q, err := QuoteString(k)
			if err != nil {
				return err
			}
			b.WriteString(q)
			b.WriteByte(':')
			if err := canon(b, t[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("%w: cannot canonicalise a %T", ErrInvalidPCS, v)
	}
	return nil
}

// ErrInvalidPCS marks a PCS (or key) this SDK cannot canonicalise, sign or send: never retried.
var ErrInvalidPCS = errors.New("flk: invalid PCS")
