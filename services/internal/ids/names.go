package ids

// ValidNamespace reports whether s is a namespace or alias: 1 to 63 of
// [a-z0-9-], starting with a letter or digit. Written out by hand because it
// runs on every request.
func ValidNamespace(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidAlias is ValidNamespace: aliases share the namespace pattern.
func ValidAlias(s string) bool { return ValidNamespace(s) }

// ValidStreamName reports whether s matches ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$.
func ValidStreamName(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidStreamID reports whether s is a `str_` id.
func ValidStreamID(s string) bool {
	if len(s) != 30 || s[:4] != "str_" {
		return false
	}
	for i := 4; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidCredentialShape reports whether s has the form of a credential. A
// string of another form cannot authenticate and is refused without a
// lookup.
func ValidCredentialShape(s string) bool { return CredentialRe.MatchString(s) }
