package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"

	kp "github.com/IBM/keyprotect-go-client"
)

// Key Protect's answers these cases compare with are documented at
// https://cloud.ibm.com/apidocs/key-protect and in docs/api.md, which lists every difference.

// keys made by this run: a wraps and rotates, b is deleted with return=minimal, c is disabled,
// enabled and deleted with return=representation.
type keys struct {
	a, b, c  *kp.Key
	aVersion string // a's first version, before the rotation
}

func (r *run) all() {
	ks := &keys{}
	pt := randomB64(32)
	aad := []string{"keyprotect-go", r.id}
	var ctA, ctC string

	r.check("token", r.caseToken)
	r.check("create", func() []string { return r.caseCreate(ks) })
	r.check("get", func() []string { return r.caseGet(ks.a, false) })
	r.check("get-metadata", func() []string { return r.caseGet(ks.b, true) })
	r.check("list-paging", func() []string { return r.caseListPaging(ks) })
	r.check("get-keys", func() []string { return r.caseGetKeys(ks) })
	r.check("list-bad-query", r.caseListBadQuery)
	r.check("wrap", func() (p []string) { ctA, p = r.caseWrap(ks.a, pt, aad); return p })
	r.check("wrap-generated-dek", func() []string { return r.caseWrapGenerated(ks.a) })
	r.check("unwrap-aad", func() []string { return r.caseUnwrap(ks.a, ctA, pt, aad) })
	r.check("unwrap-wrong-aad", func() []string { return r.caseUnwrapWrongAad(ks.a, ctA) })
	r.check("rotate", func() []string { return r.caseRotate(ks) })
	r.check("versions", func() []string { return r.caseVersions(ks) })
	r.check("unwrap-after-rotate", func() []string { return r.caseUnwrapAfterRotate(ks, ctA, pt, aad) })
	r.check("rewrap", func() []string { return r.caseRewrap(ks, ctA, pt, aad) })
	r.check("disable", func() (p []string) { ctC, p = r.caseDisable(ks.c, pt); return p })
	r.check("disabled-key-refuses", func() []string { return r.caseDisabledRefuses(ks.c, ctC) })
	r.check("list-state-filter", func() []string { return r.caseStateFilter(ks) })
	r.check("enable", func() []string { return r.caseEnable(ks.c, ctC, pt) })
	r.check("delete-minimal", func() []string { return r.caseDeleteMinimal(ks.b) })
	r.check("delete-representation", func() []string { return r.caseDeleteRepresentation(ks.c) })
	r.check("deleted-key", func() []string { return r.caseDeletedKey(ks.c, ctC, pt) })
	r.check("list-deleted", func() []string { return r.caseListDeleted(ks) })
	r.check("unknown-key", r.caseUnknownKey)
	r.check("bad-token", r.caseBadToken)
	r.check("no-role-on-instance", r.caseNoRole)
	r.check("library-token-source", r.caseLibraryTokenSource)
}

func randomB64(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// ctx is a background context carrying a current token (the documented way, auth.go).
func (r *run) ctx(p *problems) context.Context {
	ctx, err := r.tokens.WithAuth(context.Background())
	if err != nil {
		p.addf("token: %v", err)
		return context.Background()
	}
	return ctx
}

func (r *run) caseToken() []string {
	var p problems
	tok, err := r.tokens.fetch(context.Background())
	if !p.ok("POST /identity/token", err) {
		return p
	}
	// The library renews 60 s before expiry: a shorter lifetime means a token request per call.
	if tok.ExpiresIn <= 120 {
		p.addf("expires_in %d s: tokens.lifetime must be well above one minute", tok.ExpiresIn)
	}
	if tok.Expiration == 0 {
		p.addf("no expiration in the token answer")
	}
	return p
}

func (r *run) caseCreate(ks *keys) []string {
	var p problems
	ctx := r.ctx(&p)
	var err error
	ks.a, err = r.api.CreateRootKey(ctx, "kpgo-"+r.id+"-a", nil)
	if p.ok("CreateRootKey a", err) {
		p.key("created a", ks.a, keyWant{name: "kpgo-" + r.id + "-a", state: 1})
		if ks.a.KeyVersion != nil {
			ks.aVersion = ks.a.KeyVersion.ID
		}
	}
	ks.b, err = r.api.CreateKeyWithOptions(ctx, "kpgo-"+r.id+"-b", false, kp.WithDescription("keyprotect-go b"))
	if p.ok("CreateKeyWithOptions b", err) {
		p.key("created b", ks.b, keyWant{name: "kpgo-" + r.id + "-b", description: "keyprotect-go b", state: 1})
	}
	ks.c, err = r.api.CreateRootKey(ctx, "kpgo-"+r.id+"-c", nil)
	if p.ok("CreateRootKey c", err) {
		p.key("created c", ks.c, keyWant{name: "kpgo-" + r.id + "-c", state: 1})
	}
	return p
}

func (r *run) caseGet(k *kp.Key, metadata bool) []string {
	var p problems
	if k == nil {
		return []string{"no key (create failed)"}
	}
	ctx := r.ctx(&p)
	get, what := r.api.GetKey, "GetKey"
	if metadata {
		get, what = r.api.GetKeyMetadata, "GetKeyMetadata"
	}
	got, err := get(ctx, k.ID)
	if p.ok(what, err) {
		p.key(what, got, keyWant{id: k.ID, name: k.Name, description: k.Description, state: 1})
		if got.KeyVersion != nil && k.KeyVersion != nil && got.KeyVersion.ID != k.KeyVersion.ID {
			p.addf("%s: keyVersion %s, created with %s", what, got.KeyVersion.ID, k.KeyVersion.ID)
		}
		if got.Payload != "" {
			p.addf("%s: a root key's payload was returned", what)
		}
	}
	return p
}

// listAll pages through ListKeys with `limit` until a short page, as a client does.
func (r *run) listAll(ctx context.Context, p *problems, limit uint32, states []kp.KeyState) []string {
	var ids []string
	offset := uint32(0)
	for page := 0; ; page++ {
		if page == 100 {
			p.addf("ListKeys limit=%d: still full pages after 100 (limit/offset ignored?)", limit)
			return ids
		}
		l, o := limit, offset
		ks, err := r.api.ListKeys(ctx, &kp.ListKeysOptions{Limit: &l, Offset: &o, State: states})
		if !p.ok("ListKeys", err) {
			return ids
		}
		if ks.Metadata.NumberOfKeys != len(ks.Keys) {
			p.addf("ListKeys: collectionTotal %d for %d resources", ks.Metadata.NumberOfKeys, len(ks.Keys))
		}
		if uint32(len(ks.Keys)) > limit {
			p.addf("ListKeys limit=%d answered %d keys", limit, len(ks.Keys))
			return ids
		}
		for _, k := range ks.Keys {
			if contains(ids, k.ID) {
				p.addf("ListKeys: key %s on two pages", k.ID)
			}
			ids = append(ids, k.ID)
		}
		if uint32(len(ks.Keys)) < limit {
			return ids
		}
		offset += limit
	}
}

func (r *run) caseListPaging(ks *keys) []string {
	var p problems
	if ks.a == nil || ks.b == nil || ks.c == nil {
		return []string{"no keys (create failed)"}
	}
	ctx := r.ctx(&p)
	ids := r.listAll(ctx, &p, 2, nil)
	for _, k := range []*kp.Key{ks.a, ks.b, ks.c} {
		if !contains(ids, k.ID) {
			p.addf("paging with limit 2 never returned %s", k.Name)
		}
	}
	// The default page (no limit) holds them too: Key Protect's default limit is 200.
	all, err := r.api.ListKeys(ctx, nil)
	if p.ok("ListKeys(nil)", err) && len(all.Keys) < len(ids) && len(all.Keys) < 200 {
		p.addf("ListKeys(nil): %d keys, paging found %d", len(all.Keys), len(ids))
	}
	return p
}

func (r *run) caseGetKeys(ks *keys) []string {
	var p problems
	if ks.a == nil {
		return []string{"no key (create failed)"}
	}
	ctx := r.ctx(&p)
	// GetKeys(0, 0) sends limit=2000 (the library's own default).
	all, err := r.api.GetKeys(ctx, 0, 0)
	if p.ok("GetKeys(0, 0)", err) {
		var ids []string
		for _, k := range all.Keys {
			ids = append(ids, k.ID)
		}
		if !contains(ids, ks.a.ID) {
			p.addf("GetKeys: key a missing")
		}
		if all.Metadata.NumberOfKeys != len(all.Keys) {
			p.addf("GetKeys: collectionTotal %d for %d resources", all.Metadata.NumberOfKeys, len(all.Keys))
		}
	}
	one, err := r.api.GetKeys(ctx, 1, 0)
	if p.ok("GetKeys(1, 0)", err) && len(one.Keys) != 1 {
		p.addf("GetKeys(1, 0): %d keys", len(one.Keys))
	}
	return p
}

func (r *run) caseListBadQuery() []string {
	var p problems
	ctx := r.ctx(&p)
	tooMany := uint32(5001)
	_, err := r.api.ListKeys(ctx, &kp.ListKeysOptions{Limit: &tooMany})
	p.kpError("ListKeys limit=5001 (max 5000)", err, 400, "")
	_, err = r.api.ListKeys(ctx, &kp.ListKeysOptions{State: []kp.KeyState{9}})
	p.kpError("ListKeys state=9", err, 400, "")
	return p
}
