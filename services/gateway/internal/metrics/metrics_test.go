package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every frame type of spec 4.3 is counted under its own label value, and
// counting a frame allocates nothing (it runs once per frame written).
// Not parallel: AllocsPerRun.
func TestFrameOutCountsEachTypeWithoutAllocating(t *testing.T) {
	m := New()
	frames := map[string]string{
		"joined":          `{"type":"joined","conversation_id":"conv_x"}`,
		"stream_joined":   `{"type":"stream_joined","stream_id":"str_x"}`,
		"stream_left":     `{"type":"stream_left"}`,
		"token":           `{"type":"token","data":"x","seq":1}`,
		"stream_metadata": `{"type":"stream_metadata","seq":2}`,
		"pong":            `{"type":"pong"}`,
		"replay_gap":      `{"type":"replay_gap"}`,
		"subscribed":      `{"type":"subscribed"}`,
		"other":           `{"type":"cursor","cursor":""}`,
	}
	for typ, f := range frames {
		var fc FrameCounts
		fc.Count([]byte(f))
		m.AddFramesOut(&fc)
		if got := testutil.ToFloat64(m.FramesOut.WithLabelValues(typ)); got != 1 {
			t.Errorf("frames_out{type=%q} = %v after one %s frame, want 1", typ, got, typ)
		}
	}
	var fc FrameCounts
	for _, junk := range []string{"", "{", `{"type":`, `{"type":"tokenized_very_long_type_name"}`, `[1]`} {
		fc.Count([]byte(junk))
	}
	fc.Count([]byte(frames["token"]))
	fc.Count([]byte(frames["token"]))
	m.AddFramesOut(&fc)
	if got := testutil.ToFloat64(m.FramesOut.WithLabelValues("other")); got != 6 {
		t.Errorf("frames_out{type=other} = %v, want 6", got)
	}
	if got := testutil.ToFloat64(m.FramesOut.WithLabelValues("token")); got != 3 {
		t.Errorf("frames_out{type=token} = %v, want 3", got)
	}
	tok := []byte(frames["token"])
	if n := testing.AllocsPerRun(100, func() { fc.Count(tok); m.AddFramesOut(&fc) }); n != 0 {
		t.Errorf("counting a written frame allocates %v times, want 0", n)
	}
}

// C19: a fresh registry already exposes every family of spec 3.8 (and ours),
// and its label values are fixed vocabularies.
func TestC19RegistryHasSpecNamesBeforeTraffic(t *testing.T) {
	t.Parallel()
	m := New()
	m.SetQueuedBytes(func() int64 { return 42 })
	m.SetTailBytes(func() int64 { return 7 })
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fams {
		got[f.GetName()] = true
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if strings.ContainsAny(l.GetValue(), " {}\"") {
					t.Errorf("%s{%s=%q}: not a vocabulary value", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	for _, name := range []string{
		"ams_connections", "ams_streams_live", "ams_frames_in_total", "ams_frames_out_total",
		"ams_closes_total", "ams_replay_frames_total", "ams_outbound_queue_bytes",
		"ams_resume_tail_bytes", "ams_outbound_queue_overflows_total", "ams_resumes_finished_total", "ams_publish_errors_total",
		"ams_events_resent_total", "ams_nats_store_lost_total",
	} {
		if !got[name] {
			t.Errorf("family %s missing before any traffic", name)
		}
	}
	for _, f := range fams {
		if f.GetName() == "ams_outbound_queue_bytes" {
			if v := f.GetMetric()[0].GetGauge().GetValue(); v != 42 {
				t.Errorf("ams_outbound_queue_bytes = %v, want the source's 42", v)
			}
		}
		if f.GetName() == "ams_resume_tail_bytes" {
			if v := f.GetMetric()[0].GetGauge().GetValue(); v != 7 {
				t.Errorf("ams_resume_tail_bytes = %v, want the source's 7", v)
			}
		}
	}
}
