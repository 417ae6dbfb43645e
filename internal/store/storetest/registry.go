package storetest

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func testStations(t *testing.T, f *fixture) {
	mldsa := newStation("b-station")
	mldsa.Algorithm, mldsa.PublicKey = sigalg.MLDSA65, fakeKey("mldsa", 1974)
	mldsa.ID = identity.FromSPKI(mldsa.PublicKey)
	// Stations list by name, then ID: "a-station" twice shows the tie-break.
	twinA, twinB := newStation("a-station"), newStation("a-station-twin")
	twinB.Name = "a-station"
	for _, c := range []struct {
		name string
		st   store.Station
	}{
		{"ecdsa", twinA},
		{"same name, other key", twinB},
		{"ml-dsa key", mldsa},
	} {
		t.Run(c.name, func(t *testing.T) {
			must(t, f.s.CreateStation(f.ctx, c.st))
			got, err := f.s.GetStation(f.ctx, c.st.ID)
			must(t, err)
			equal(t, "GetStation", got, c.st)
			again := c.st
			again.Name = "other"
			wantErr(t, "CreateStation with a taken ID", f.s.CreateStation(f.ctx, again), store.ErrExists)
		})
	}
	_, err := f.s.GetStation(f.ctx, identity.ID{1})
	wantErr(t, "GetStation(unknown)", err, store.ErrNotFound)

	list, err := f.s.ListStations(f.ctx)
	must(t, err)
	first, second := twinA, twinB
	if string(second.ID[:]) < string(first.ID[:]) {
		first, second = second, first
	}
	equal(t, "ListStations", list, []store.Station{first, second, mldsa, f.station})
}

func testProducts(t *testing.T, f *fixture) {
	gateway := store.Product{
		ID: "gateway", Name: "Gateway", CertValidity: 90*24*time.Hour + 1500*time.Millisecond,
		CloudEndpoint: "https://gw.example.com", CreatedAt: at(2 * time.Minute),
	}
	lamp := store.Product{ID: "a-lamp", Name: "Lamp", CertValidity: time.Hour, CreatedAt: at(3 * time.Minute)}
	for _, p := range []store.Product{gateway, lamp} {
		t.Run(p.ID, func(t *testing.T) {
			must(t, f.s.CreateProduct(f.ctx, p))
			got, err := f.s.GetProduct(f.ctx, p.ID)
			must(t, err)
			equal(t, "GetProduct", got, p)
			wantErr(t, "CreateProduct with a taken ID", f.s.CreateProduct(f.ctx, p), store.ErrExists)
		})
	}
	_, err := f.s.GetProduct(f.ctx, "no-such-product")
	wantErr(t, "GetProduct(unknown)", err, store.ErrNotFound)
	list, err := f.s.ListProducts(f.ctx)
	must(t, err)
	equal(t, "ListProducts", list, []store.Product{lamp, gateway, f.product})
}

func testTokens(t *testing.T, f *fixture) {
	admin := store.Token{
		ID: "tok-b", Name: "admin", Hash: sha256.Sum256([]byte("secret b")),
		Scopes: []string{"devices:read", "devices:write", "manifests:import"}, CreatedAt: at(0),
		ExpiresAt: at(30 * 24 * time.Hour),
	}
	reader := store.Token{ID: "tok-a", Name: "reader", Hash: sha256.Sum256([]byte("secret a")),
		Scopes: []string{"audit:read"}, CreatedAt: at(time.Second)}
	none := store.Token{ID: "tok-c", Name: "no scopes", Hash: sha256.Sum256([]byte("secret c")), CreatedAt: at(0)}
	for _, tok := range []store.Token{admin, reader, none} {
		t.Run(tok.Name, func(t *testing.T) {
			must(t, f.s.CreateToken(f.ctx, tok))
			got, err := f.s.GetToken(f.ctx, tok.ID)
			must(t, err)
			equal(t, "GetToken", got, tok)
			wantErr(t, "CreateToken with a taken ID", f.s.CreateToken(f.ctx, tok), store.ErrExists)
		})
	}
	_, err := f.s.GetToken(f.ctx, "tok-unknown")
	wantErr(t, "GetToken(unknown)", err, store.ErrNotFound)

	t.Run("revoke", func(t *testing.T) {
		must(t, f.s.RevokeToken(f.ctx, admin.ID, at(time.Hour)))
		// Revoking again succeeds and keeps the first time.
		must(t, f.s.RevokeToken(f.ctx, admin.ID, at(2*time.Hour)))
		got, err := f.s.GetToken(f.ctx, admin.ID)
		must(t, err)
		want := admin
		want.RevokedAt = at(time.Hour)
		equal(t, "revoked token", got, want)
		wantErr(t, "RevokeToken(unknown)", f.s.RevokeToken(f.ctx, "tok-unknown", at(0)), store.ErrNotFound)

		list, err := f.s.ListTokens(f.ctx)
		must(t, err)
		equal(t, "ListTokens", list, []store.Token{reader, want, none})
	})
}
