package frame

import (
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// MaxEmitTokens bounds the tokens of one HTTP emit (spec 5.3).
const MaxEmitTokens = 256

var (
	errEmitJSON = wireerr.New(wireerr.InvalidJSON, "the body must be a JSON object")
	errEmitData = wireerr.New(wireerr.InvalidTokenData, `the body must be {"data": string} or {"tokens": [string, …]} with 1 to 256 tokens`)
	errEmitSize = wireerr.New(wireerr.TokenTooLarge, "a token is over 65536 bytes")
)

// DecodeEmitBody reads the body of an HTTP emit (spec 5.3): exactly one of
// {"data": string} or {"tokens": [string, …]}, with the decoder's rules for
// strings (an unpaired surrogate is bad Unicode; "" is a valid token) and
// for members (keys compare unescaped; the last of repeated keys wins).
func DecodeEmitBody(b []byte) ([]string, error) {
	// skipValue validates UTF-8 in strings; outside them only ASCII is
	// valid JSON. After it, ends are found without validating again.
	i := skipSpace(b, 0)
	end, err := skipValue(b, i, 0)
	if err != nil || skipSpace(b, end) != len(b) || b[i] != '{' {
		return nil, errEmitJSON
	}
	var data, list []byte
	var hasData, hasList bool
	obj := b[i:end]
	for j := skipSpace(obj, 1); j < len(obj) && obj[j] != '}'; {
		ke := StringEnd(obj, j)
		key := obj[j:ke]
		j = skipSpace(obj, skipSpace(obj, ke)+1) // past ':'
		ve := ValueEnd(obj, j)
		switch {
		case keyIs(key, "data"):
			data, hasData = obj[j:ve], true
		case keyIs(key, "tokens"):
			list, hasList = obj[j:ve], true
		}
		j = skipSpace(obj, ve)
		if j < len(obj) && obj[j] == ',' {
			j = skipSpace(obj, j+1)
		}
	}
	if hasData == hasList {
		return nil, errEmitData
	}
	str := func(v []byte) (string, error) {
		if len(v) == 0 || v[0] != '"' {
			return "", errEmitData
		}
		s, err := unquote(v)
		if err != nil {
			return "", errEmitData
		}
		if len(s) > MaxData {
			return "", errEmitSize
		}
		return s, nil
	}
	if hasData {
		s, err := str(data)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	if list[0] != '[' {
		return nil, errEmitData
	}
	var out []string
	j := skipSpace(list, 1)
	for j < len(list) && list[j] != ']' {
		e := ValueEnd(list, j)
		s, err := str(list[j:e])
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if len(out) > MaxEmitTokens {
			return nil, errEmitData
		}
		j = skipSpace(list, e)
		if j < len(list) && list[j] == ',' {
			j = skipSpace(list, j+1)
		}
	}
	if len(out) == 0 {
		return nil, errEmitData
	}
	return out, nil
}

// keyIs reports whether a validated key literal (quotes included) names
// name once unescaped, as the frame decoder compares keys; a key with an
// unpaired surrogate escape names nothing.
func keyIs(key []byte, name string) bool {
	if !hasEscape(key) {
		return string(key[1:len(key)-1]) == name
	}
	u, err := unquote(key)
	return err == nil && u == name
}

// TypeOf returns the `type` of a frame encoded by this package.
func TypeOf(f []byte) string {
	const prefix = `{"type":"`
	if len(f) < len(prefix) || string(f[:len(prefix)]) != prefix {
		return ""
	}
	for i := len(prefix); i < len(f); i++ {
		if f[i] == '"' {
			return string(f[len(prefix):i])
		}
	}
	return ""
}
