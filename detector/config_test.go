package detector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "detector.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	t.Setenv("FLOWWATCH_SHARD_INDEX", "1")
	t.Setenv("FLOWWATCH_TOKEN", "s3cret")
	c, err := LoadConfig(writeConfig(t, `
store: { dsn: "clickhouse://ch:9000/flowwatch" }
flows: [/etc/flowwatch/flows]
tick: 2s
shard: { index: 0, count: 2 }
alerting: { alertmanagers: [http://am:9093], resend: 2m, group_by_checkpoint: true }
sinks:
  - { name: nats, type: nats, url: "nats://nats:4222", rate: 5 }
  - { name: ops, type: webhook, url: "http://ops/cmd", dry_run: true }
rebuild_window: 7d
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Shard.Index != 1 || c.Token != "s3cret" || time.Duration(c.Tick) != 2*time.Second ||
		time.Duration(c.RebuildWindow) != 7*24*time.Hour || c.Listen != DefaultListen || !c.Alerting.GroupByCheckpoint ||
		len(c.Sinks) != 2 || !c.Sinks[1].DryRun {
		t.Fatalf("config = %+v", c)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, `
store: { dsn: "clickhouse://ch:9000", embedded: ./data }
shard: { index: 3, count: 2 }
sinks:
  - { name: a, type: kafka }
  - { name: a, type: nats, url: "nats://x" }
`))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"exactly one of 'dsn'", "'flows' must list", "'shard.index' 3", "'sinks[0].type' must be nats or webhook",
		"'sinks[0].url' is required", "'sinks[1].name' \"a\" is used twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if _, err := LoadConfig(writeConfig(t, "store: {dsn: x}\nflows: [f]\ncolour: blue\n")); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestAutoRebuildWindow(t *testing.T) {
	flows, probs := model.Parse("bench.yaml", []byte(benchFlow)) // start → paid|reserved (1h) → shipped (1h)
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	if got := autoRebuildWindow(model.NewSet(flows)); got != 5*time.Hour {
		t.Fatalf("auto rebuild window = %s, want 2×2h+1h", got)
	}
	set, err := model.Load("../model/testdata/flows") // onboarding: a 13-day horizon
	if err != nil {
		t.Fatal(err)
	}
	if got := autoRebuildWindow(set); got != DefaultRebuildWindow {
		t.Fatalf("capped window = %s", got)
	}
}

// ${env:NAME} references are replaced in any value, keep the type of what they stand for when
// they are a whole value, take defaults, and a missing variable is an error naming its key.
func TestLoadConfigExpandsEnvironment(t *testing.T) {
	t.Setenv("FW_AM", "https://am.example:9093")
	t.Setenv("FW_HOOK_SECRET", "whsec_c2VjcmV0LWZvci10ZXN0cw==")
	t.Setenv("FW_AM_PASSWORD", `p#ss: "word"`)
	t.Setenv("FW_RATE", "2.5")
	t.Setenv("FW_NATS_PASSWORD", "null")
	t.Setenv("FW_ORG", "tenant-1")
	config := func(opsSink string) string {
		return `
store: { dsn: "clickhouse://ch:9000/flowwatch" }
flows: [/etc/flowwatch/flows]
alerting:
  alertmanagers:
    - http://plain:9093
    - url: ${env:FW_AM}
      http_config:
        basic_auth: { username: flowwatch, password: "${env:FW_AM_PASSWORD}" }
        http_headers:
          X-Scope-OrgID: { values: ["${env:FW_ORG}"] }
  webhooks:
    - { url: "https://ops/${env:FW_ORG}/hook", secret: "${env:FW_HOOK_SECRET}" }
sinks:
  - name: nats
    type: nats
    url: nats://nats:4222
    user: ${env:FW_NATS_USER:-flowwatch}
    password: ${env:FW_NATS_PASSWORD}
    rate: ${env:FW_RATE}
  - ` + opsSink + "\n"
	}
	_, err := LoadConfig(writeConfig(t, config(`{ name: ops, type: webhook, url: "http://ops/cmd", secret: "$${env:NOT_EXPANDED}" }`)))
	if err == nil || !strings.Contains(err.Error(), "'sinks[1].secret': not a Standard Webhooks secret") {
		t.Fatalf("a secret that is not base64: %v", err)
	}
	c, err := LoadConfig(writeConfig(t, config(`{ name: ops, type: webhook, url: "http://ops/cmd?price=$$5" }`)))
	if err != nil {
		t.Fatal(err)
	}
	am := c.Alerting.Alertmanagers
	if len(am) != 2 || am[0].URL != "http://plain:9093" || am[0].HTTPConfig != nil || am[1].URL != "https://am.example:9093" {
		t.Fatalf("alertmanagers = %+v", am)
	}
	hc := am[1].HTTPConfig
	if string(hc.BasicAuth.Password) != `p#ss: "word"` || hc.HTTPHeaders.Headers["X-Scope-OrgID"].Values[0] != "tenant-1" ||
		!hc.FollowRedirects {
		t.Fatalf("http_config = %+v", hc)
	}
	if h := c.Alerting.Webhooks[0]; h.URL != "https://ops/tenant-1/hook" || h.Secret != "whsec_c2VjcmV0LWZvci10ZXN0cw==" {
		t.Fatalf("webhook = %+v", h)
	}
	if s := c.Sinks[0]; s.User != "flowwatch" || s.Password != "null" || s.Rate != 2.5 {
		t.Fatalf("nats sink = %+v", s)
	}
	if c.Sinks[1].URL != "http://ops/cmd?price=$5" {
		t.Fatalf("$$ = %q", c.Sinks[1].URL)
	}

	_, err = LoadConfig(writeConfig(t, "store: {dsn: x}\nflows: [f]\ntoken: ${env:FW_NOT_SET}\nalerting:\n  webhooks: [{url: \"http://x/${env:bad-name}\"}]\n"))
	for _, want := range []string{"line 3: 'token': environment variable FW_NOT_SET is not set",
		`line 5: 'alerting.webhooks[0].url': "bad-name" is not an environment variable name`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

// amHead starts a configuration whose alerting.alertmanagers[0] is https://am:9093.
const amHead = `store: { dsn: "clickhouse://ch:9000" }
flows: [f]
alerting:
  alertmanagers:
    - url: https://am:9093
`

// Unknown keys are found at any depth, inside http_config too, and named by their path.
func TestLoadConfigUnknownKeysNamed(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, `
`+amHead+`      http_config:
        tls_config: { cafile: /etc/ca.pem }
  webhooks:
    - { url: "http://hook", sekret: x }
sinks:
  - { name: n, type: nats, url: "nats://n:4222", credentials: /x }
`))
	for _, want := range []string{"line 8: 'alerting.alertmanagers[0].http_config.tls_config.cafile' is not a known key",
		"line 10: 'alerting.webhooks[0].sekret' is not a known key", "line 12: 'sinks[0].credentials' is not a known key"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

// Files that a receiver's settings name are read at load: a missing one is an error naming
// the key; settings of one kind of sink on the other kind are errors too.
func TestLoadConfigChecksReceiverSettings(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadConfig(writeConfig(t, `
`+amHead+`      http_config: { tls_config: { ca_file: `+dir+`/missing-ca.pem } }
    - url: "//flowwatch:s3cret@am:9093"
  webhooks:
    - url: https://hook
      http_config: { basic_auth: { username: u, password: p }, bearer_token: t }
sinks:
  - { name: n, type: nats, url: "nats://n:4222", credentials_file: `+dir+`/missing.creds, user: u }
  - { name: k, type: nats, url: "nats://n:4222", nkey_seed_file: `+dir+`/missing.nk, secret: x }
  - { name: w, type: webhook, url: "https://w", tls_config: { ca_file: /x }, password: p }
  - { name: t, type: nats, url: "nats://n:4222", tls_config: { ca_file: `+dir+`/missing-ca.pem } }
`))
	for _, want := range []string{
		"'alerting.alertmanagers[0].http_config': unable to read CA cert",
		"'alerting.alertmanagers[1].url' must be an absolute URL",
		"'alerting.webhooks[0].http_config': at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
		"'sinks[0].credentials_file': open " + dir + "/missing.creds",
		"'sinks[0]' takes one of credentials_file, nkey_seed_file or user and password",
		"'sinks[0].user' and 'sinks[0].password' go together",
		"'sinks[1].nkey_seed_file'",
		"'sinks[1].secret' applies to webhook sinks only",
		"'sinks[2].tls_config' applies to nats sinks only",
		"'sinks[2].password' applies to nats sinks only",
		"'sinks[3].tls_config': unable to read CA cert",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a URL is quoted in an error (it may hold credentials): %v", err)
	}
}
