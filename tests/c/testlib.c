/* C side of the memscope linker tests and benches (tests/linker.rs,
 * benches/linker.rs). Compiled at test time: cc -shared -fPIC -O2. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- scalars ---- */
int add(int a, int b) { return a + b; }
void blank(void) {}
int8_t id_i8(int8_t x) { return x; }
uint8_t id_u8(uint8_t x) { return x; }
int16_t id_i16(int16_t x) { return x; }
uint16_t id_u16(uint16_t x) { return x; }
int32_t id_i32(int32_t x) { return x; }
uint32_t id_u32(uint32_t x) { return x; }
int64_t id_i64(int64_t x) { return x; }
uint64_t id_u64(uint64_t x) { return x; }
float id_f32(float x) { return x; }
double id_f64(double x) { return x; }
bool not_bool(bool x) { return !x; }
void *id_ptr(void *p) { return p; }
/* small ints must arrive sign/zero-extended correctly */
int32_t widen_i8(int8_t x) { return x; }
uint32_t widen_u8(uint8_t x) { return x; }
int32_t widen_i16(int16_t x) { return x; }
int64_t widen_i32(int32_t x) { return x; }
int8_t neg_i8(int8_t x) { return (int8_t)-x; }
int64_t sum_mixed(int8_t a, uint8_t b, int16_t c, uint16_t d, int32_t e, uint32_t f, int64_t g) {
    return a + b + c + d + e + (int64_t)f + g;
}

/* 12 doubles: 8 in registers, 4 on the stack; weights check the order */
double weighted12(double a0, double a1, double a2, double a3, double a4, double a5,
                  double a6, double a7, double a8, double a9, double a10, double a11) {
    double a[12] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11};
    double s = 0;
    for (int i = 0; i < 12; i++) s += a[i] * (i + 1);
    return s;
}
/* 10 ints interleaved with doubles */
double mixed10(int i0, double d0, int i1, double d1, int i2, double d2, int i3, double d3,
               int i4, double d4, int i5, double d5, int i6, double d6, int i7, double d7) {
    return i0 + 2 * d0 + 3 * i1 + 4 * d1 + 5 * i2 + 6 * d2 + 7 * i3 + 8 * d3 + 9 * i4 + 10 * d4 +
           11 * i5 + 12 * d5 + 13 * i6 + 14 * d6 + 15 * i7 + 16 * d7;
}

/* ---- structs ---- */
typedef struct { int32_t x; double y; } IntDouble; /* mixed int/float, 16 B */
IntDouble scale_id(IntDouble p, int32_t k) { IntDouble r = {p.x * k, p.y * k}; return r; }

typedef struct { double re, im; } Complex; /* {double,double} (row 12) */
Complex cmul(Complex a, Complex b) {
    Complex r = {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
    return r;
}
Complex cswap(Complex a) { Complex r = {a.im, a.re}; return r; }

typedef struct { int32_t a; int32_t b; int32_t c; } Three; /* 12 bytes */
/* a 9..16-byte struct followed by more arguments */
int64_t three_then(Three t, int64_t x, double y, int32_t z) {
    return t.a + 10 * t.b + 100 * t.c + x + (int64_t)y + z;
}

typedef struct { uint32_t v[17]; } Big17; /* 68 bytes: passed in memory */
Big17 big_twice(Big17 b) {
    for (int i = 0; i < 17; i++) b.v[i] *= 2;
    return b;
}
uint64_t big_sum(Big17 b, int32_t extra) {
    uint64_t s = 0;
    for (int i = 0; i < 17; i++) s += b.v[i];
    return s + extra;
}
/* 320 bytes: larger than the linker's native-stack buffers */
typedef struct { uint64_t v[40]; } Big320;
Big320 big320_scale(Big320 b, uint64_t k) {
    for (int i = 0; i < 40; i++) b.v[i] *= k;
    return b;
}

typedef struct { float x, y; } Vec2;
typedef struct { Vec2 pos; int16_t id; char tag; } Nested;
Nested nested_move(Nested n, float dx) {
    n.pos.x += dx;
    n.pos.y -= dx;
    n.id += 1;
    n.tag = 'Z';
    return n;
}

typedef union { int64_t i; double d; } IntOrDouble;
IntOrDouble union_bump(IntOrDouble u, int is_double) {
    if (is_double) u.d += 0.5; else u.i += 1;
    return u;
}
typedef union { float f; uint32_t bits; } FloatBits;
uint32_t float_bits(FloatBits u) { return u.bits; }

typedef struct { char name[16]; int32_t age; } Person;
Person person_older(Person p) {
    p.age += 1;
    p.name[0] = (char)(p.name[0] - 'a' + 'A');
    return p;
}

/* ---- strings and pointers ---- */
size_t c_strlen(const char *s) { return strlen(s); }
char *greet(const char *name) { /* C-allocated: free with c_free */
    size_t n = strlen(name) + 8;
    char *r = malloc(n);
    snprintf(r, n, "hello, %s", name);
    return r;
}
void c_free(void *p) { free(p); }
void out_pair(int32_t *a, double *b) { *a = 42; *b = 2.5; }
void fill_bytes(uint8_t *buf, size_t n, uint8_t v) { memset(buf, v, n); }

/* ---- callbacks ---- */
int32_t apply_int(int32_t (*f)(int32_t, int32_t), int32_t a, int32_t b) { return f(a, b); }
int32_t apply_int_twice(int32_t (*f)(int32_t, int32_t), int32_t a, int32_t b) {
    int32_t x = f(a, b);
    return x + f(a, b);
}
size_t apply_str(const char *(*f)(int32_t), int32_t k) { return strlen(f(k)); }
Complex apply_complex(Complex (*f)(Complex), Complex c) { return f(c); }
int32_t apply_small(int8_t (*f)(int8_t), int8_t x) { return f(x); }
void sort_ints(int32_t *v, size_t n, int (*cmp)(const void *, const void *)) {
    qsort(v, n, sizeof(int32_t), cmp);
}
int cmp_int(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}
void (*get_cmp(void))(void) { return (void (*)(void))cmp_int; }
typedef int32_t (*binop)(int32_t, int32_t);
binop get_add(void) { return add; }

/* ---- varargs ---- */
double vsum(int n, ...) {
    va_list ap;
    va_start(ap, n);
    double s = 0;
    for (int i = 0; i < n; i++) s += va_arg(ap, double);
    va_end(ap);
    return s;
}
int64_t vsum_long(int n, ...) {
    va_list ap;
    va_start(ap, n);
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += va_arg(ap, int64_t);
    va_end(ap);
    return s;
}

/* ---- errno ---- */
int set_errno_to(int e) { errno = e; return -1; }

/* ---- globals ---- */
int32_t counter = 7;
double ratio = 0.25;
char label[8] = "abc";
int32_t bump_counter(void) { return ++counter; }
double get_ratio(void) { return ratio; }

/* ---- a thread C creates calls back ---- */
#include <pthread.h>
struct thread_call { int32_t (*f)(int32_t, int32_t); int32_t a, b, r; };
static void *thread_main(void *p) {
    struct thread_call *t = p;
    t->r = t->f(t->a, t->b);
    return NULL;
}
int32_t call_in_thread(int32_t (*f)(int32_t, int32_t), int32_t a, int32_t b) {
    struct thread_call t = {f, a, b, 0};
    pthread_t th;
    if (pthread_create(&th, NULL, thread_main, &t) != 0) return -1;
    pthread_join(th, NULL);
    return t.r;
}

/* ---- read-only globals (issue 12, UB 7) ---- */
const int32_t const_answer = 42;                 /* .rodata */
const char *const const_ptr = "relocated";      /* .data.rel.ro: RELRO */
int32_t mutable_answer = 41;                     /* .data */
int32_t zeroed_answer;                           /* .bss */

/* ---- unions of every register class by value (issue 12, UB 9) ---- */
typedef union { float f; } UFloat;                       /* SSE, 4 B */
UFloat uf_neg(UFloat u) { u.f = -u.f; return u; }
typedef union { float f; double d; } UFD;                /* SSE, 8 B */
UFD ufd_add(UFD u, double x) { u.d += x; return u; }
typedef union { float f[2]; } UF2;                       /* SSE, 8 B, align 4 */
UF2 uf2_swap(UF2 u) { float t = u.f[0]; u.f[0] = u.f[1]; u.f[1] = t; return u; }
typedef union { float f[3]; } UF3;                       /* SSE + SSE, 12 B */
UF3 uf3_sum(UF3 u) { u.f[2] = u.f[0] + u.f[1]; return u; }
typedef union { double d[2]; float f[4]; } UDD;          /* SSE + SSE, 16 B */
UDD udd_swap(UDD u, double k) { double t = u.d[0]; u.d[0] = u.d[1] * k; u.d[1] = t; return u; }
typedef union { int32_t i; uint32_t u; } UInt;           /* INTEGER, 4 B */
UInt ui_inc(UInt u) { u.i += 1; return u; }
typedef union { int32_t i; float f; } UMix;              /* INTEGER, 4 B */
UMix umix_neg(UMix u) { u.f = -u.f; return u; }
typedef union { int64_t i; double d; } UMix8;            /* INTEGER, 8 B */
UMix8 umix8_add(UMix8 u, double x) { u.d += x; return u; }
typedef struct { double d; int32_t i; } DI;
typedef union { DI s; double e[2]; } UTwo;               /* SSE + INTEGER, 16 B */
UTwo utwo_bump(UTwo u, int32_t k) { u.s.d *= 2; u.s.i += k; return u; }
typedef union { double d[3]; int64_t i; } UBig;          /* MEMORY, 24 B */
UBig ubig_rev(UBig u) { double t = u.d[0]; u.d[0] = u.d[2]; u.d[2] = t; u.d[1] += 1; return u; }

/* ---- issue 16 (linker): structs and unions in variadic positions ---- */
/* n IntDouble structs read with va_arg: sum of x + y */
double va_points(int n, ...) {
    va_list ap;
    va_start(ap, n);
    double s = 0;
    for (int i = 0; i < n; i++) {
        IntDouble p = va_arg(ap, IntDouble);
        s += p.x + p.y;
    }
    va_end(ap);
    return s;
}
/* one vararg per letter of `kinds`: 'c' Complex (re*10+im), 'u' UMix8 (.i),
 * 'f' UFD (.d), 'b' Big17 (sum), 'l' int64_t, 'd' double; weights check order */
double va_kinds(const char *kinds, ...) {
    va_list ap;
    va_start(ap, kinds);
    double s = 0;
    for (int i = 0; kinds[i]; i++) {
        double w = i + 1, x = 0;
        switch (kinds[i]) {
        case 'c': { Complex c = va_arg(ap, Complex); x = c.re * 10 + c.im; break; }
        case 'u': { UMix8 u = va_arg(ap, UMix8); x = (double)u.i; break; }
        case 'f': { UFD u = va_arg(ap, UFD); x = u.d; break; }
        case 'b': { Big17 b = va_arg(ap, Big17); for (int k = 0; k < 17; k++) x += b.v[k]; break; }
        case 'l': x = (double)va_arg(ap, int64_t); break;
        case 'd': x = va_arg(ap, double); break;
        default: return -1;
        }
        s += w * x;
    }
    va_end(ap);
    return s;
}

/* ---- issue 16 (linker): typed upcalls with structs and unions by value ---- */
Complex apply_complex2(Complex (*f)(Complex, Complex), Complex a, Complex b) { return f(a, b); }
IntDouble apply_id(IntDouble (*f)(IntDouble, int32_t), IntDouble p, int32_t k) { return f(p, k); }
Big17 apply_big17(Big17 (*f)(Big17, uint32_t), uint32_t k) { /* memory class in and out */
    Big17 b;
    for (int i = 0; i < 17; i++) b.v[i] = (uint32_t)i * 3u;
    return f(b, k);
}
UMix8 apply_umix8(UMix8 (*f)(UMix8), int64_t i) { UMix8 u; u.i = i; return f(u); }
UFD apply_ufd(UFD (*f)(UFD, double), double d) { UFD u; u.d = d; return f(u, d); }
/* calls f n times and sums the real parts: C reading many struct results */
double sum_complex_via(Complex (*f)(Complex, Complex), int n) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        Complex a = {i, 1}, b = {2, -i};
        s += f(a, b).re;
    }
    return s;
}

/* ---- issue 16 (linker): typed globals and reinterpreted addresses ---- */
Complex g_complex = {3.0, 4.0};
const Complex g_const_complex = {1.5, -2.5};
const char *c_message(void) { return "from C"; }
const char *c_bad_utf8(void) { return "\xff\xfe"; }
static IntDouble the_point = {7, 0.5};
IntDouble *point_ptr(void) { return &the_point; }

/* Direct-call (fastcall) signatures: one per class, and some past the table. */
uint32_t fc_u32(uint32_t a, uint32_t b) { return a * 3u + b; }
int64_t fc_i64(int64_t a, int64_t b, int64_t c) { return a * 100 + b * 10 + c; }
uint64_t fc_u64(uint64_t a) { return a ^ 0xF0F0F0F0F0F0F0F0ull; }
float fc_f32(float a, float b) { return a * b - 0.5f; }
double fc_mix3(int32_t a, uint64_t b, double c) { return (double)a + (double)b * c; }
const char *fc_ptr(const char *p, int64_t off) { return p + off; }
static int32_t fc_last;
void fc_store(int32_t v) { fc_last = v; }
int32_t fc_load(void) { return fc_last; }
int32_t fc_four(int32_t a, int32_t b, int32_t c, int32_t d) { return a - b + c * d; }
int16_t fc_short(int16_t a, int16_t b) { return (int16_t)(a - b); }
double fc_i_f_mix(float a, int32_t b, double c) { return (double)a * b + c; }
