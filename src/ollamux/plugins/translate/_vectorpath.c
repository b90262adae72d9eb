/* A translated embedding answer's vectors read from their JSON text, in C.
 *
 * Optional: when it cannot be built, ollamux reads them in Python (vectorpath.py says
 * which is used; the tests check that both give the same vectors for any input).
 *
 * vectors(text, start, base64) -> (list[str], int) | None
 *
 * ``text`` is an ASCII str; at ``start`` must come a JSON list of lists of JSON numbers.
 * The answer is each vector as it goes into an embedding list, and the index just after
 * the outer list: with ``base64`` false, the vector's JSON text as it is; else a JSON
 * string of its numbers packed as little-endian float32 (as ``struct.pack("<f")`` packs
 * what ``json.loads`` makes of them) in base64. None for anything else, and for a number
 * float32 cannot hold (``struct`` would refuse it).
 *
 * one(text, start) -> (str, int) | None
 *
 * One vector (a JSON list of numbers) at ``start``: its text, and the index after it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Powers of ten a double holds exactly. */
static const double EXACT_TENS[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};
#define MAX_EXACT_TEN 22
#define MAX_EXACT_DIGITS 15 /* any 15-digit integer is a double exactly */

static Py_ssize_t skip(const unsigned char *p, Py_ssize_t n, Py_ssize_t i) {
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) {
        i++;
    }
    return i;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* The JSON number at p[i]: the index after it, or -1 when there is none. With ``value``,
 * also its value as Python's ``json`` reads it (an int for a number without fraction or
 * exponent, else a float) converted to a double; -1 as well for an int no double holds. */
static Py_ssize_t number(const unsigned char *p, Py_ssize_t n, Py_ssize_t i, double *value) {
    Py_ssize_t start = i;
    int negative = 0, digits = 0, integer = 1;
    uint64_t mantissa = 0;
    long long fraction = 0, exponent = 0;
    if (i < n && p[i] == '-') {
        negative = 1;
        i++;
    }
    if (i >= n || !is_digit(p[i])) {
        return -1;
    }
    if (p[i] == '0') {
        i++;
    } else {
        for (; i < n && is_digit(p[i]); i++) {
            if (digits < 19) {
                mantissa = mantissa * 10 + (uint64_t)(p[i] - '0');
            }
            digits++;
        }
    }
    if (i < n && p[i] == '.') {
        integer = 0;
        i++;
        if (i >= n || !is_digit(p[i])) {
            return -1;
        }
        for (; i < n && is_digit(p[i]); i++) {
            if (digits || p[i] != '0') { /* leading zeros are not significant */
                if (digits < 19) {
                    mantissa = mantissa * 10 + (uint64_t)(p[i] - '0');
                }
                digits++;
            }
            fraction++;
        }
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        int minus = 0;
        integer = 0;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) {
            minus = p[i] == '-';
            i++;
        }
        if (i >= n || !is_digit(p[i])) {
            return -1;
        }
        for (; i < n && is_digit(p[i]); i++) {
            if (exponent < 100000000) {
                exponent = exponent * 10 + (p[i] - '0');
            }
        }
        if (minus) {
            exponent = -exponent;
        }
    }
    if (value == NULL) {
        return i;
    }
    long long tens = exponent - fraction;
    if (mantissa == 0 && digits == 0) {
        /* zero: json reads "-0" as the int 0, "-0.0" as the float -0.0 */
        *value = negative && !integer ? -0.0 : 0.0;
    } else if (digits <= MAX_EXACT_DIGITS && tens >= -MAX_EXACT_TEN && tens <= MAX_EXACT_TEN) {
        /* one correctly rounded operation on two exact doubles: what strtod gives */
        double x = (double)mantissa;
        x = tens < 0 ? x / EXACT_TENS[-tens] : x * EXACT_TENS[tens];
        *value = negative ? -x : x;
    } else {
        char *end = NULL;
        double x = PyOS_string_to_double((const char *)p + start, &end, NULL);
        if (x == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return -1;
        }
        if (end != (const char *)p + i || (integer && isinf(x))) {
            return -1; /* an int too large for a double: json's int, struct refuses it */
        }
        *value = x;
    }
    return i;
}

/* ``size`` bytes in base64, quoted as a JSON string, as a new str. */
static PyObject *quoted_base64(const unsigned char *bytes, Py_ssize_t size) {
    Py_ssize_t length = 4 * ((size + 2) / 3);
    PyObject *out = PyUnicode_New(length + 2, 127);
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *o = PyUnicode_1BYTE_DATA(out);
    *o++ = '"';
    Py_ssize_t i = 0;
    for (; i + 3 <= size; i += 3) {
        uint32_t v = (uint32_t)bytes[i] << 16 | (uint32_t)bytes[i + 1] << 8 | bytes[i + 2];
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = B64[v & 63];
    }
    if (i < size) {
        uint32_t v = (uint32_t)bytes[i] << 16 | (i + 1 < size ? (uint32_t)bytes[i + 1] << 8 : 0);
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = i + 1 < size ? B64[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '"';
    return out;
}

typedef struct {
    unsigned char *data;
    Py_ssize_t size, capacity;
} Packed;

/* One number more, packed as little-endian float32; -1 (no exception) when float32
 * cannot hold it, or memory ran out (an exception set). */
static int pack(Packed *packed, double value) {
    if (packed->size + 4 > packed->capacity) {
        Py_ssize_t capacity = packed->capacity ? 2 * packed->capacity : 4096;
        unsigned char *data = PyMem_Realloc(packed->data, (size_t)capacity);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        packed->data = data;
        packed->capacity = capacity;
    }
    if (PyFloat_Pack4(value, (char *)packed->data + packed->size, 1) < 0) {
        PyErr_Clear(); /* too large for float32: refused, as struct refuses it */
        return -1;
    }
    packed->size += 4;
    return 0;
}

/* The vector at p[i] (``[`` there) as its text, or with ``packed`` as its base64, in
 * ``*entry``: the index after it, or -1 when it is not a list of numbers (an exception
 * set only when one was raised). */
static Py_ssize_t vector(
    PyObject *text, const unsigned char *p, Py_ssize_t n, Py_ssize_t i, Packed *packed,
    PyObject **entry
) {
    Py_ssize_t start = i;
    double value = 0.0;
    if (packed != NULL) {
        packed->size = 0;
    }
    i = skip(p, n, i + 1);
    if (i < n && p[i] != ']') {
        for (;;) {
            i = number(p, n, i, packed != NULL ? &value : NULL);
            if (i < 0 || (packed != NULL && pack(packed, value) < 0)) {
                return -1;
            }
            i = skip(p, n, i);
            if (i >= n || p[i] != ',') {
                break;
            }
            i = skip(p, n, i + 1);
        }
    }
    if (i >= n || p[i] != ']') {
        return -1;
    }
    i++;
    *entry = packed != NULL ? quoted_base64(packed->data, packed->size)
                            : PyUnicode_Substring(text, start, i);
    return *entry == NULL ? -1 : i;
}

/* ``text`` as the bytes to scan when it can be (an ASCII str, ``start`` within it). */
static const unsigned char *scannable(PyObject *text, Py_ssize_t start) {
    if (!PyUnicode_IS_ASCII(text) || start < 0 || start >= PyUnicode_GET_LENGTH(text)) {
        return NULL;
    }
    return PyUnicode_1BYTE_DATA(text);
}

static PyObject *one(PyObject *self, PyObject *args) {
    PyObject *text, *entry = NULL;
    Py_ssize_t i;
    (void)self;
    if (!PyArg_ParseTuple(args, "Un", &text, &i)) {
        return NULL;
    }
    const unsigned char *p = scannable(text, i);
    if (p == NULL || p[i] != '[') {
        Py_RETURN_NONE;
    }
    i = vector(text, p, PyUnicode_GET_LENGTH(text), i, NULL, &entry);
    if (i < 0) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(Nn)", entry, i);
}

static PyObject *vectors(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t i;
    int base64;
    (void)self;
    if (!PyArg_ParseTuple(args, "Unp", &text, &i, &base64)) {
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const unsigned char *p = scannable(text, i);
    if (p == NULL) {
        Py_RETURN_NONE;
    }
    Packed packed = {NULL, 0, 0};
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    if (p[i] != '[') {
        goto refused;
    }
    i = skip(p, n, i + 1);
    if (i < n && p[i] == ']') {
        i++;
    } else {
        for (;;) {
            if (i >= n || p[i] != '[') {
                goto refused;
            }
            PyObject *entry = NULL;
            i = vector(text, p, n, i, base64 ? &packed : NULL, &entry);
            if (i < 0) {
                goto refused;
            }
            int failed = PyList_Append(out, entry);
            Py_DECREF(entry);
            if (failed) {
                goto refused;
            }
            i = skip(p, n, i);
            if (i < n && p[i] == ']') {
                i++;
                break;
            }
            if (i >= n || p[i] != ',') {
                goto refused;
            }
            i = skip(p, n, i + 1);
        }
    }
    PyMem_Free(packed.data);
    return Py_BuildValue("(Nn)", out, i);
refused:
    PyMem_Free(packed.data);
    Py_DECREF(out);
    if (PyErr_Occurred()) {
        return NULL; /* out of memory */
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"vectors", vectors, METH_VARARGS, "vectors(text, start, base64) -> (list[str], int) | None"},
    {"one", one, METH_VARARGS, "one(text, start) -> (str, int) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_vectorpath", "An embed answer's vectors read from their JSON text, in C.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__vectorpath(void) { return PyModule_Create(&module); }
