package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// The sizes of the password values in the Secrets Manager versions the S scenarios create.
const (
	// defaultValueSize is --value-size's default.
	defaultValueSize = 16
	// maxValueSize keeps a version's SecretString under Secrets Manager's 65536 bytes.
	maxValueSize = 65000

	mixSmallMin, mixSmallMax = 256, 1 << 10 // 16 of every 20 versions
	mixCertificate           = 4 << 10      // 3 of every 20
	mixBundle                = 16 << 10     // 1 of every 20
)

// valueMixText is what --value-mix does, for the flag's help and the report's Parameters line.
const valueMixText = `80% of versions 256 B-1 KiB, 15% a 4 KiB "certificate", 5% a 16 KiB "bundle"`

// checkValueFlags refuses value flags that do not go together or do not fit a version.
func checkValueFlags(size int, mix bool) error {
	if mix && size != defaultValueSize {
		return fmt.Errorf("--value-mix and --value-size=%d are exclusive: the mix sets every version's size", size)
	}
	if size < 0 || size > maxValueSize {
		return fmt.Errorf("--value-size=%d: want 0 to %d bytes (Secrets Manager caps a SecretString at 65536)", size, maxValueSize)
	}
	return nil
}

// mixSize is the password size of version k under --value-mix. Every 20 consecutive versions
// (20m to 20m+19) hold exactly 16 small values, 3 certificates and 1 bundle; which slot holds
// which is rotated per block by a hash of m, so that the sizes do not line up with the
// namespaces (AWSSecret i pins version i mod K and lives in namespace i mod namespaces). A
// small value's size is spread over 256 B-1 KiB by a hash of k.
func mixSize(k int) int {
	block, pos := k/20, k%20
	switch slot := (pos + int(splitmix64(uint64(block))%20)) % 20; {
	case slot == 0:
		return mixBundle
	case slot <= 3:
		return mixCertificate
	default:
		return mixSmallMin + int(splitmix64(uint64(k)^0x5bd1e995)%(mixSmallMax-mixSmallMin+1))
	}
}

// splitmix64 is a fixed 64-bit mixing function: a deterministic spread of an index.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// randomValue returns n random bytes of base64url text (crypto/rand): a secret value that does
// not compress. It is a secret: never print it.
func randomValue(n int) string {
	if n <= 0 {
		return ""
	}
	raw := make([]byte, (3*n+3)/4) // encodes to at least n characters
	_, _ = rand.Read(raw)
	return base64.RawURLEncoding.EncodeToString(raw)[:n]
}
