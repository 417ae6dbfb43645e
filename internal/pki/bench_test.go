package pki

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// The benchmarks behind the figures in docs/pki.md. The CA signs through
// the software key store's opaque signer, as it does in the platform.

var benchDeviceSuites = []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65}

func BenchmarkIssueDevice(b *testing.B) {
	for _, caSuite := range caSuites {
		tc := newTestCA(b, caSuite)
		for _, dev := range benchDeviceSuites {
			b.Run("ca="+string(caSuite)+"/device="+string(dev), func(b *testing.B) {
				req := DeviceRequest{Identity: testIdentity("bench"), PublicKey: deviceKey(b, dev, "bench").Public(), Validity: 365 * 24 * time.Hour}
				for b.Loop() {
					if _, err := tc.IssueDevice(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkParseCSR(b *testing.B) {
	for _, s := range sigalg.All() {
		b.Run(string(s.ID()), func(b *testing.B) {
			der, err := CreateCSR(deviceKey(b, s.ID(), "bench"), "device")
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(der)))
			for b.Loop() {
				if _, err := ParseCSR(der); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyChain verifies a device certificate with its two-level
// chain from DER, parsing all three certificates each time; VerifyDevice
// is the same check with the CA's chain parsed once, and VerifyDevice-again
// the same leaf once more, answered from memory.
func BenchmarkVerifyChain(b *testing.B) {
	for _, caSuite := range caSuites {
		tc := newTestCA(b, caSuite)
		chain := tc.Chain()
		for _, dev := range benchDeviceSuites {
			leaf := issueDevice(b, tc.CA, deviceKey(b, dev, "bench").Public(), "bench").DER
			b.Run("VerifyChain/ca="+string(caSuite)+"/device="+string(dev), func(b *testing.B) {
				for b.Loop() {
					if _, err := VerifyChain(leaf, chain[:1], chain[1:], testNow, x509.ExtKeyUsageClientAuth); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("VerifyDevice/ca="+string(caSuite)+"/device="+string(dev), func(b *testing.B) {
				for b.Loop() {
					forget(tc.CA)
					if _, _, err := tc.VerifyDevice([][]byte{leaf}, testNow); err != nil {
						b.Fatal(err)
					}
				}
			})
			// A device's later requests: the verification remembered.
			b.Run("VerifyDevice-again/ca="+string(caSuite)+"/device="+string(dev), func(b *testing.B) {
				for b.Loop() {
					if _, _, err := tc.VerifyDevice([][]byte{leaf}, testNow); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
