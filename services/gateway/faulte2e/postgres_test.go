package faulte2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/internal/pgtest"
)

// Postgres unavailable: with the account and link services on a Postgres
// cluster the test stops, the control plane answers 503 with the JSON
// error unavailable (account creation, minting, link listing), live
// streams keep flowing, and once Postgres is back every call succeeds
// again without restarting anything.
func TestPostgresUnavailable(t *testing.T) {
	t.Parallel()
	pg := pgtest.StartCluster(t)
	sys := gwtest.Start(t, gwtest.Options{
		AccountDatabaseURL: pg.CreateDatabase(t, "ams_account"),
		LinkDatabaseURL:    pg.CreateDatabase(t, "ams_link"),
	})
	base := sys.URL(0)
	_, credW := sys.CreateAccount(t, 0, "writer")
	_, credR := sys.CreateAccount(t, 0, "reader")
	conv := sys.Mint(t, 0, credW, "writer", `{"alias":"room"}`)
	link := conv["magic_link"].(string)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := dial(ctx, link, credW, "w", "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.CloseNow()
	r, err := dial(ctx, link, credR, "r", "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.CloseNow()
	frames := make(chan map[string]any, 1024)
	go readInto(ctx, r, frames)
	go readInto(ctx, w, make(chan map[string]any, 1024))
	exchange := func(data string) {
		t.Helper()
		if err := w.Write(ctx, websocket.MessageText, []byte(`{"type":"token","data":"`+data+`"}`)); err != nil {
			t.Fatalf("write: %v", err)
		}
		deadline := time.After(wait)
		for {
			select {
			case m := <-frames:
				if m["type"] == "token" && m["data"] == data {
					return
				}
			case <-deadline:
				t.Fatalf("token %q not delivered", data)
			}
		}
	}
	waitType(t, frames, "joined")
	exchange("before")

	pg.Stop(t)
	t.Log("postgres stopped")
	for name, call := range map[string]func() *gwtest.Response{
		"create account": func() *gwtest.Response {
			return gwtest.DoResponse(t, http.MethodPost, base+"/v1/accounts", nil, `{"namespace":"during"}`)
		},
		"mint": func() *gwtest.Response {
			return gwtest.DoResponse(t, http.MethodPost, base+"/v1/writer/conversations", gwtest.Bearer(credW), `{"alias":"during"}`)
		},
		"list links": func() *gwtest.Response {
			return gwtest.DoResponse(t, http.MethodGet, base+"/v1/writer/conversations/room/links", gwtest.Bearer(credW), "")
		},
	} {
		resp := call()
		if resp.Status != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s without Postgres: %d %s, want 503 unavailable", name, resp.Status, resp.Body)
			continue
		}
		if m := resp.JSON(t); m["error"] != "unavailable" {
			t.Errorf("%s without Postgres: %s, want error unavailable", name, resp.Body)
		}
	}
	// The stream plane does not need Postgres.
	for i := 0; i < 5; i++ {
		exchange(fmt.Sprintf("during-%d", i))
	}

	pg.Start(t)
	t.Log("postgres started again")
	deadline := time.Now().Add(recovery)
	for {
		resp := gwtest.DoResponse(t, http.MethodPost, base+"/v1/accounts", nil, `{"namespace":"after"}`)
		if resp.Status == http.StatusCreated {
			break
		}
		if resp.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("create account after Postgres returned: %d %s", resp.Status, resp.Body)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	sys.Mint(t, 0, credW, "writer", `{"alias":"after"}`)
	exchange("after")
}

// waitType skips frames until one of type typ.
func waitType(t testing.TB, frames <-chan map[string]any, typ string) map[string]any {
	t.Helper()
	return waitFrame(t, frames, typ+" frame", func(m map[string]any) bool { return m["type"] == typ })
}

func readInto(ctx context.Context, c *websocket.Conn, out chan<- map[string]any) {
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			select {
			case out <- m:
			default:
			}
		}
	}
}
