package main

import (
	"fmt"
	"strings"
)

// step is one step of the start-up walkthrough: what it shows and the
// shell lines that do it.
type step struct {
	title string
	lines []string
}

// walkthrough is the copy-paste tour `ams dev` prints. It runs in bash or
// zsh against a fresh or an existing data directory (the namespace is new
// each time). A surface added to the gateway adds its steps here.
func walkthrough(base string) []step {
	return []step{
		{"Where the server is, and a namespace of your own", []string{
			`BASE=` + base,
			`NS=demo-$(date +%s)-$RANDOM`,
		}},
		{"Create an account. Its credential is shown only this once", []string{
			`ACCOUNT=$(curl -sS -X POST "$BASE/v1/accounts" -d "{\"namespace\":\"$NS\"}"); echo "$ACCOUNT"`,
			`CRED=$(printf '%s' "$ACCOUNT" | sed -E 's/.*"credential":"([^"]+)".*/\1/')`,
		}},
		{"Mint a conversation: its magic link admits anyone who holds it", []string{
			`CONV=$(curl -sS -X POST "$BASE/v1/$NS/conversations" -H "Authorization: Bearer $CRED" -d '{"alias":"hello","metadata":{"topic":"demo"}}'); echo "$CONV"`,
			`LINK=$(printf '%s' "$CONV" | sed -E 's/.*"magic_link":"([^"]+)".*/\1/')`,
		}},
		{"Inspect it, with the link's token t or as its owner", []string{
			`curl -sS "$BASE/v1/$NS/conversations/hello?t=${LINK#*\?t=}"`,
			`curl -sS "$BASE/v1/$NS/conversations/hello" -H "Authorization: Bearer $CRED"`,
		}},
		{"List its links (another one: POST to the same URL)", []string{
			`curl -sS "$BASE/v1/$NS/conversations/hello/links" -H "Authorization: Bearer $CRED"`,
		}},
	}
}

// banner is what `ams dev` prints once it serves: the URL and the tour.
func banner(base, dataDir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nAMS is running at %s\n", base)
	fmt.Fprintf(&b, "Data: %s (delete it to start over). Stop: Ctrl-C.\n\n", dataDir)
	fmt.Fprintf(&b, "Try it (bash or zsh, copy and paste):\n\n")
	for i, s := range walkthrough(base) {
		fmt.Fprintf(&b, "  # %d. %s\n", i+1, s.title)
		for _, l := range s.lines {
			fmt.Fprintf(&b, "  %s\n", l)
		}
		b.WriteString("\n")
	}
	return b.String()
}
