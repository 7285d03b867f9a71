package main

import (
	"context"
	"errors"
	"net/http"

	kp "github.com/IBM/keyprotect-go-client"
	"github.com/IBM/keyprotect-go-client/iam"
	"github.com/google/uuid"
)

// Disable, enable, state filters, delete, deleted keys and the error cases.

func (r *run) caseDisable(k *kp.Key, pt string) (string, []string) {
	if k == nil {
		return "", []string{"no key (create failed)"}
	}
	ct, wrapProblems := r.caseWrap(k, pt, nil)
	p := problems(wrapProblems)
	ctx := r.ctx(&p)
	if !p.ok("DisableKey", r.api.DisableKey(ctx, k.ID)) {
		return ct, p
	}
	got, err := r.api.GetKeyMetadata(ctx, k.ID)
	if p.ok("GetKeyMetadata after DisableKey", err) {
		p.key("disabled c", got, keyWant{id: k.ID, name: k.Name, state: 2})
	}
	return ct, p
}

func (r *run) caseDisabledRefuses(k *kp.Key, ct string) []string {
	var p problems
	if k == nil || ct == "" {
		return []string{"no key or ciphertext (an earlier case failed)"}
	}
	ctx := r.ctx(&p)
	// Key Protect: a suspended key neither wraps nor unwraps, nor is disabled or rotated again.
	_, err := r.api.Wrap(ctx, k.ID, []byte(randomB64(32)), nil)
	p.kpError("Wrap with a disabled key", err, 409, "KEY_ACTION_INVALID_STATE_ERR")
	_, err = r.api.Unwrap(ctx, k.ID, []byte(ct), nil)
	p.kpError("Unwrap with a disabled key", err, 409, "KEY_ACTION_INVALID_STATE_ERR")
	p.kpError("DisableKey again", r.api.DisableKey(ctx, k.ID), 409, "KEY_ACTION_INVALID_STATE_ERR")
	p.kpError("Rotate a disabled key", r.api.Rotate(ctx, k.ID, ""), 409, "KEY_ACTION_INVALID_STATE_ERR")
	return p
}

func (r *run) caseStateFilter(ks *keys) []string {
	var p problems
	if ks.a == nil || ks.c == nil {
		return []string{"no keys (create failed)"}
	}
	ctx := r.ctx(&p)
	for _, f := range []struct {
		states    []kp.KeyState
		in, notIn *kp.Key
	}{
		{[]kp.KeyState{kp.Suspended}, ks.c, ks.a},
		{[]kp.KeyState{kp.Active}, ks.a, ks.c},
		{[]kp.KeyState{kp.Active, kp.Suspended}, ks.c, nil},
		{[]kp.KeyState{kp.Active, kp.Suspended}, ks.a, nil},
	} {
		ids := r.listAll(ctx, &p, 50, f.states)
		if !contains(ids, f.in.ID) {
			p.addf("ListKeys state=%v: %s missing", f.states, f.in.Name)
		}
		if f.notIn != nil && contains(ids, f.notIn.ID) {
			p.addf("ListKeys state=%v: %s listed", f.states, f.notIn.Name)
		}
	}
	return p
}

func (r *run) caseEnable(k *kp.Key, ct, pt string) []string {
	var p problems
	if k == nil || ct == "" {
		return []string{"no key or ciphertext (an earlier case failed)"}
	}
	ctx := r.ctx(&p)
	if !p.ok("EnableKey", r.api.EnableKey(ctx, k.ID)) {
		return p
	}
	got, err := r.api.GetKeyMetadata(ctx, k.ID)
	if p.ok("GetKeyMetadata after EnableKey", err) {
		p.key("enabled c", got, keyWant{id: k.ID, name: k.Name, state: 1})
	}
	back, err := r.api.Unwrap(ctx, k.ID, []byte(ct), nil)
	if p.ok("Unwrap after EnableKey", err) && string(back) != pt {
		p.addf("Unwrap after EnableKey: another plaintext")
	}
	p.kpError("EnableKey of an active key", r.api.EnableKey(ctx, k.ID), 409, "KEY_ACTION_INVALID_STATE_ERR")
	return p
}

func (r *run) caseDeleteMinimal(k *kp.Key) []string {
	var p problems
	if k == nil {
		return []string{"no key (create failed)"}
	}
	ctx := r.ctx(&p)
	// Key Protect: Prefer: return=minimal answers 204 with no body; the library returns no key.
	got, err := r.api.DeleteKey(ctx, k.ID, kp.ReturnMinimal)
	if p.ok("DeleteKey return=minimal", err) && got != nil {
		p.addf("DeleteKey return=minimal: a key came back")
	}
	return p
}

func (r *run) caseDeleteRepresentation(k *kp.Key) []string {
	var p problems
	if k == nil {
		return []string{"no key (create failed)"}
	}
	ctx := r.ctx(&p)
	// Key Protect: Prefer: return=representation answers 200 with the deleted key (state 5).
	got, err := r.api.DeleteKey(ctx, k.ID, kp.ReturnRepresentation)
	if p.ok("DeleteKey return=representation", err) {
		p.key("DeleteKey return=representation", got, keyWant{id: k.ID, name: k.Name, state: 5, deleted: true})
	}
	return p
}

func (r *run) caseDeletedKey(k *kp.Key, ct, pt string) []string {
	var p problems
	if k == nil || ct == "" {
		return []string{"no key or ciphertext (an earlier case failed)"}
	}
	ctx := r.ctx(&p)
	_, err := r.api.DeleteKey(ctx, k.ID, kp.ReturnMinimal)
	p.kpError("DeleteKey of a deleted key", err, 410, "KEY_DELETED_ERR")
	for _, get := range []struct {
		what string
		f    func(context.Context, string) (*kp.Key, error)
	}{{"GetKey", r.api.GetKey}, {"GetKeyMetadata", r.api.GetKeyMetadata}} {
		got, err := get.f(ctx, k.ID)
		if p.ok(get.what+" of a deleted key", err) {
			p.key(get.what+" of a deleted key", got, keyWant{id: k.ID, name: k.Name, state: 5, deleted: true})
		}
	}
	_, err = r.api.Unwrap(ctx, k.ID, []byte(ct), nil)
	p.kpError("Unwrap with a deleted key", err, 410, "KEY_DELETED_ERR")
	_, err = r.api.Wrap(ctx, k.ID, []byte(pt), nil)
	p.kpError("Wrap with a deleted key", err, 410, "KEY_DELETED_ERR")
	p.kpError("Rotate a deleted key", r.api.Rotate(ctx, k.ID, ""), 410, "KEY_DELETED_ERR")
	// Key Protect lists a deleted key's versions only with allKeyStates=true.
	_, err = r.api.ListKeyVersions(ctx, k.ID, nil)
	p.kpError("ListKeyVersions of a deleted key", err, 410, "KEY_DELETED_ERR")
	yes := true
	vs, err := r.api.ListKeyVersions(ctx, k.ID, &kp.ListKeyVersionsOptions{AllKeyStates: &yes})
	if p.ok("ListKeyVersions allKeyStates=true of a deleted key", err) && len(vs.KeyVersion) != 1 {
		p.addf("ListKeyVersions allKeyStates=true: %d versions, want 1", len(vs.KeyVersion))
	}
	return p
}

func (r *run) caseListDeleted(ks *keys) []string {
	var p problems
	if ks.a == nil || ks.b == nil || ks.c == nil {
		return []string{"no keys (create failed)"}
	}
	ctx := r.ctx(&p)
	// Key Protect's default state filter is 0,1,2,3: deleted keys are listed only when asked for.
	live := r.listAll(ctx, &p, 200, nil)
	if contains(live, ks.b.ID) || contains(live, ks.c.ID) || !contains(live, ks.a.ID) {
		p.addf("ListKeys: deleted keys listed or a live key missing")
	}
	gone := r.listAll(ctx, &p, 200, []kp.KeyState{kp.Destroyed})
	if !contains(gone, ks.b.ID) || !contains(gone, ks.c.ID) || contains(gone, ks.a.ID) {
		p.addf("ListKeys state=5: not exactly the deleted keys")
	}
	return p
}

func (r *run) caseUnknownKey() []string {
	var p problems
	ctx := r.ctx(&p)
	id := uuid.NewString()
	_, err := r.api.GetKey(ctx, id)
	p.kpError("GetKey of an unknown key", err, 404, "")
	_, err = r.api.GetKeyMetadata(ctx, id)
	p.kpError("GetKeyMetadata of an unknown key", err, 404, "")
	_, err = r.api.ListKeyVersions(ctx, id, nil)
	p.kpError("ListKeyVersions of an unknown key", err, 404, "")
	_, err = r.api.Wrap(ctx, id, []byte(randomB64(32)), nil)
	p.kpError("Wrap with an unknown key", err, 404, "")
	_, err = r.api.DeleteKey(ctx, id, kp.ReturnMinimal)
	p.kpError("DeleteKey of an unknown key", err, 404, "")
	return p
}

func (r *run) caseBadToken() []string {
	var p problems
	ctx := kp.NewContextWithAuth(context.Background(), "Bearer not.a.token")
	_, err := r.api.GetKeys(ctx, 1, 0)
	p.kpError("GetKeys with a bad token", err, 401, "")
	return p
}

func (r *run) caseNoRole() []string {
	var p problems
	ctx := r.ctx(&p)
	_, err := r.other.GetKeys(ctx, 1, 0)
	p.kpError("GetKeys on an instance without a role", err, 403, "")
	return p
}

// caseLibraryTokenSource shows why the documented way exists: the library's own token source
// (APIKey in ClientConfig) fetches tokens over http.DefaultTransport, so against keygate it fails
// until that transport presents the client certificate (process-wide; docs/api.md).
func (r *run) caseLibraryTokenSource() []string {
	var p problems
	cc := kp.ClientConfig{
		BaseURL: r.cfg.url, InstanceID: r.cfg.instance, APIKey: r.cfg.apiKey,
		TokenURL: r.cfg.url + "/identity/token", Timeout: 60,
	}
	c, err := kp.New(cc, r.transport)
	if !p.ok("kp.New", err) {
		return p
	}
	saved := iam.RetryMax
	iam.RetryMax = 0 // a refused handshake is retried otherwise, for ~15 s
	_, err = c.GetKeys(context.Background(), 1, 0)
	iam.RetryMax = saved
	var kpErr *kp.Error
	if err == nil || errors.As(err, &kpErr) {
		p.addf("token over the default transport (no client certificate): %v, want a refused handshake", err)
	}
	defaultTransport := http.DefaultTransport
	http.DefaultTransport = r.transport
	defer func() { http.DefaultTransport = defaultTransport }()
	c, err = kp.New(cc, r.transport)
	if !p.ok("kp.New", err) {
		return p
	}
	for i := 0; i < 2; i++ {
		_, err = c.GetKeys(context.Background(), 1, 0)
		p.ok("GetKeys with the library's token source over a client-certificate DefaultTransport", err)
	}
	return p
}
