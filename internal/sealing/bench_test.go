package sealing

import "testing"

// The benchmarks seal a 1 KiB message: the cost is the KEM's, and the AEAD
// adds well under a microsecond at this size.
var benchMessage = make([]byte, 1024)

func BenchmarkSeal(b *testing.B) {
	for _, kem := range allKEMs {
		b.Run(string(kem), func(b *testing.B) {
			pub := testKey(b, kem).Public()
			for b.Loop() {
				if _, err := Seal(pub, nil, nil, benchMessage); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, kem := range allKEMs {
		b.Run(string(kem), func(b *testing.B) {
			priv := testKey(b, kem)
			sealed, err := Seal(priv.Public(), nil, nil, benchMessage)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := Open(priv, nil, nil, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGenerateKey(b *testing.B) {
	for _, kem := range allKEMs {
		b.Run(string(kem), func(b *testing.B) {
			for b.Loop() {
				if _, err := GenerateKey(kem); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
