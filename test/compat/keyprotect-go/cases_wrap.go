package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"

	kp "github.com/IBM/keyprotect-go-client"
)

// Wrap, unwrap, rotate, versions and rewrap of root key a.

func (r *run) caseWrap(k *kp.Key, pt string, aad []string) (string, []string) {
	var p problems
	if k == nil {
		return "", []string{"no key (create failed)"}
	}
	ctx := r.ctx(&p)
	var aadp *[]string
	if aad != nil {
		aadp = &aad
	}
	res, err := r.api.WrapV2(ctx, k.ID, []byte(pt), aadp)
	if !p.ok("WrapV2", err) {
		return "", p
	}
	if res.CipherText == "" {
		p.addf("WrapV2: no ciphertext")
	}
	if res.PlainText != "" {
		p.addf("WrapV2: the plaintext came back")
	}
	if res.KeyVersion == nil || k.KeyVersion == nil || res.KeyVersion.ID != k.KeyVersion.ID {
		p.addf("WrapV2: keyVersion %v, want the key's current version", res.KeyVersion)
	}
	return res.CipherText, p
}

func (r *run) caseWrapGenerated(k *kp.Key) []string {
	var p problems
	if k == nil {
		return []string{"no key (create failed)"}
	}
	ctx := r.ctx(&p)
	res, err := r.api.WrapCreateDEKV2(ctx, k.ID, nil)
	if !p.ok("WrapCreateDEKV2", err) {
		return p
	}
	dek, err := base64.StdEncoding.DecodeString(res.PlainText)
	if err != nil || len(dek) != 32 {
		p.addf("WrapCreateDEKV2: plaintext is not a base64 32-byte DEK")
	}
	if res.CipherText == "" || res.KeyVersion == nil {
		p.addf("WrapCreateDEKV2: ciphertext or keyVersion missing")
	}
	back, err := r.api.Unwrap(ctx, k.ID, []byte(res.CipherText), nil)
	if p.ok("Unwrap generated", err) && string(back) != res.PlainText {
		p.addf("Unwrap of the generated DEK gave another DEK")
	}
	return p
}

func (r *run) caseUnwrap(k *kp.Key, ct, pt string, aad []string) []string {
	var p problems
	if k == nil || ct == "" {
		return []string{"no key or ciphertext (an earlier case failed)"}
	}
	ctx := r.ctx(&p)
	got, rewrapped, err := r.api.UnwrapV2(ctx, k.ID, []byte(ct), &aad)
	if p.ok("UnwrapV2", err) {
		if string(got) != pt {
			p.addf("UnwrapV2: another plaintext")
		}
		if len(rewrapped) != 0 {
			p.addf("UnwrapV2: a rewrapped ciphertext for a blob under the current version")
		}
	}
	return p
}

func (r *run) caseUnwrapWrongAad(k *kp.Key, ct string) []string {
	var p problems
	if k == nil || ct == "" {
		return []string{"no key or ciphertext (an earlier case failed)"}
	}
	ctx := r.ctx(&p)
	other := []string{"someone else"}
	_, err := r.api.Unwrap(ctx, k.ID, []byte(ct), &other)
	p.kpError("Unwrap with other aad", err, 422, "UNPROCESSABLE_CIPHERTEXT_ERR")
	_, err = r.api.Unwrap(ctx, k.ID, []byte(ct), nil)
	p.kpError("Unwrap without the aad", err, 422, "UNPROCESSABLE_CIPHERTEXT_ERR")
	return p
}

func (r *run) caseRotate(ks *keys) []string {
	var p problems
	if ks.a == nil {
		return []string{"no key (create failed)"}
	}
	ctx := r.ctx(&p)
	if !p.ok("Rotate", r.api.Rotate(ctx, ks.a.ID, "")) {
		return p
	}
	got, err := r.api.GetKey(ctx, ks.a.ID)
	if p.ok("GetKey after Rotate", err) {
		p.key("rotated a", got, keyWant{id: ks.a.ID, name: ks.a.Name, state: 1})
		if got.KeyVersion == nil || got.KeyVersion.ID == ks.aVersion {
			p.addf("GetKey after Rotate: keyVersion did not change")
		}
		if got.LastRotateDate == nil {
			p.addf("GetKey after Rotate: no lastRotateDate")
		}
		ks.a = got
	}
	return p
}

func (r *run) caseVersions(ks *keys) []string {
	var p problems
	if ks.a == nil || ks.a.KeyVersion == nil {
		return []string{"no key (create failed)"}
	}
	ctx := r.ctx(&p)
	vs, err := r.api.ListKeyVersions(ctx, ks.a.ID, nil)
	if p.ok("ListKeyVersions", err) {
		// Key Protect lists versions newest first ("reverse chronological order").
		if len(vs.KeyVersion) != 2 {
			p.addf("ListKeyVersions: %d versions, want 2", len(vs.KeyVersion))
		} else if vs.KeyVersion[0].ID != ks.a.KeyVersion.ID || vs.KeyVersion[1].ID != ks.aVersion {
			p.addf("ListKeyVersions: not newest first (%s, %s)", vs.KeyVersion[0].ID, vs.KeyVersion[1].ID)
		}
		for _, v := range vs.KeyVersion {
			if v.CreationDate == nil {
				p.addf("ListKeyVersions: version %s without creationDate", v.ID)
			}
		}
		if vs.Metadata.CollectionTotal == nil || int(*vs.Metadata.CollectionTotal) != len(vs.KeyVersion) {
			p.addf("ListKeyVersions: collectionTotal %s for %d versions", ptrText(vs.Metadata.CollectionTotal), len(vs.KeyVersion))
		}
	}
	one, yes := uint32(1), true
	for offset, want := range []string{ks.a.KeyVersion.ID, ks.aVersion, ""} {
		o := uint32(offset)
		page, err := r.api.ListKeyVersions(ctx, ks.a.ID, &kp.ListKeyVersionsOptions{Limit: &one, Offset: &o, TotalCount: &yes})
		if !p.ok("ListKeyVersions limit=1", err) {
			break
		}
		switch {
		case want == "" && len(page.KeyVersion) != 0:
			p.addf("ListKeyVersions offset=%d: %d versions past the end", offset, len(page.KeyVersion))
		case want != "" && (len(page.KeyVersion) != 1 || page.KeyVersion[0].ID != want):
			p.addf("ListKeyVersions limit=1 offset=%d: %v", offset, page.KeyVersion)
		}
		if page.Metadata.TotalCount == nil || *page.Metadata.TotalCount != 2 {
			p.addf("ListKeyVersions totalCount=true: totalCount %s, want 2", ptrText(page.Metadata.TotalCount))
		}
	}
	return p
}

func (r *run) caseUnwrapAfterRotate(ks *keys, ct, pt string, aad []string) []string {
	var p problems
	if ks.a == nil || ct == "" {
		return []string{"no key or ciphertext (an earlier case failed)"}
	}
	ctx := r.ctx(&p)
	got, rewrapped, err := r.api.UnwrapV2(ctx, ks.a.ID, []byte(ct), &aad)
	if !p.ok("UnwrapV2 of a blob under the old version", err) {
		return p
	}
	if string(got) != pt {
		p.addf("UnwrapV2: another plaintext")
	}
	if len(rewrapped) == 0 {
		p.addf("UnwrapV2: no rewrapped ciphertext for a blob under an old version")
		return p
	}
	again, err := r.api.Unwrap(ctx, ks.a.ID, rewrapped, &aad)
	if p.ok("Unwrap of the rewrapped ciphertext", err) && string(again) != pt {
		p.addf("Unwrap of the rewrapped ciphertext: another plaintext")
	}
	return p
}

// caseRewrap calls actions/rewrap over the library's own HTTP client: keyprotect-go-client has no
// Rewrap method (UnwrapV2 returns the rewrapped ciphertext instead, case unwrap-after-rotate).
func (r *run) caseRewrap(ks *keys, ct, pt string, aad []string) []string {
	var p problems
	if ks.a == nil || ks.a.KeyVersion == nil || ct == "" {
		return []string{"no key or ciphertext (an earlier case failed)"}
	}
	ctx := r.ctx(&p)
	auth, err := r.tokens.Authorization(ctx)
	if !p.ok("token", err) {
		return p
	}
	body, _ := json.Marshal(map[string]any{"ciphertext": ct, "aad": aad})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		r.cfg.url+"/api/v2/keys/"+ks.a.ID+"/actions/rewrap", bytes.NewReader(body))
	if !p.ok("request", err) {
		return p
	}
	req.Header.Set("authorization", auth)
	req.Header.Set("bluemix-instance", r.cfg.instance)
	req.Header.Set("content-type", "application/vnd.ibm.kms.key_action+json")
	res, err := r.api.HttpClient.Do(req)
	if !p.ok("POST actions/rewrap", err) {
		return p
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		p.addf("POST actions/rewrap: HTTP %d (%s), Key Protect answers 200", res.StatusCode, firstLine(raw))
		return p
	}
	var out struct {
		CipherText          string         `json:"ciphertext"`
		KeyVersion          *kp.KeyVersion `json:"keyVersion"`
		RewrappedKeyVersion *kp.KeyVersion `json:"rewrappedKeyVersion"`
	}
	if err := json.Unmarshal(raw, &out); !p.ok("rewrap answer", err) {
		return p
	}
	if out.KeyVersion == nil || out.KeyVersion.ID != ks.aVersion {
		p.addf("rewrap: keyVersion %v, want the input's version %s", out.KeyVersion, ks.aVersion)
	}
	if out.RewrappedKeyVersion == nil || out.RewrappedKeyVersion.ID != ks.a.KeyVersion.ID {
		p.addf("rewrap: rewrappedKeyVersion %v, want the current version", out.RewrappedKeyVersion)
	}
	got, err := r.api.Unwrap(ctx, ks.a.ID, []byte(out.CipherText), &aad)
	if p.ok("Unwrap of the rewrap output", err) && string(got) != pt {
		p.addf("Unwrap of the rewrap output: another plaintext")
	}
	return p
}
