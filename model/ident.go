package model

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrInvalidIdentifier is returned by CheckIdentifier for an identifier
// that breaks the rules. A request carrying one is invalid; retrying it
// unchanged fails the same way.
var ErrInvalidIdentifier = errors.New("model: invalid identifier")

// Limits on the identifiers that arrive from outside, in bytes of UTF-8
// (MaxIDLen and MaxCommandIDLen are above).
const (
	// MaxStreamIDLen bounds stream ids.
	MaxStreamIDLen = MaxIDLen
	// MaxNameLen bounds the command and view names a request may carry.
	MaxNameLen = MaxIDLen
)

// CheckIdentifier applies the one rule set every identifier from outside
// the process follows — aggregate ids, command ids, stream ids, command and
// view names, in headers and in JSON alike: s is valid UTF-8, at most maxLen
// bytes, and contains no ASCII control character (U+0000 to U+001F and
// U+007F: NUL, tab, line breaks, escape, delete). Whether s may be empty is
// the caller's rule: an empty s passes. what names the identifier in the
// error ("aggregate id"). The error wraps ErrInvalidIdentifier.
func CheckIdentifier(what, s string, maxLen int) error {
	if p := identifierProblem(what, s, maxLen); p != "" {
		return fmt.Errorf("%w: %s", ErrInvalidIdentifier, p)
	}
	return nil
}

// identifierProblem describes what is wrong with s, or returns "".
func identifierProblem(what, s string, maxLen int) string {
	if len(s) > maxLen {
		return fmt.Sprintf("%s is %d bytes, limit %d", what, len(s), maxLen)
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return fmt.Sprintf("%s is not valid UTF-8 (byte %d is 0x%02x)", what, i, s[i])
		}
		if r < 0x20 || r == 0x7f {
			return fmt.Sprintf("%s contains the control character %U at byte %d "+
				"(NUL, tabs, line breaks and other control characters are not allowed)", what, r, i)
		}
		i += size
	}
	return ""
}
