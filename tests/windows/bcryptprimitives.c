/* Test-only stand-in for bcryptprimitives.dll, which wine 8 (Debian 12) lacks
 * and Rust's std imports ProcessPrng from (its random source on Windows 10+).
 * It forwards to BCryptGenRandom, which wine has. Built and put on WINEPATH
 * by scripts/test-windows.sh; never shipped. */
#include <windows.h>
#include <bcrypt.h>
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (BCryptGenRandom(NULL, data, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) return FALSE;
        data += n; len -= n;
    }
    return TRUE;
}
