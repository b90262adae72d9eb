/* The translated streams' hottest step in C: a read of text-only records re-framed.
 *
 * Optional: when it cannot be built, ollamux runs the same step in Python (textpath.py
 * says which is used; the tests check that both give the same bytes for any input).
 *
 * reframe(data, sep, head, anchored, tail, before, after[, number, end]) -> bytes | None
 *
 * ``data`` must be records each followed by ``sep`` (so it ends with ``sep``); a record
 * holds no newline and ends with ``tail``; its text is what follows ``head`` up to
 * ``tail``: ``head`` begins the record when ``anchored``, else its last occurrence is
 * taken. Every text must be one non-empty JSON string (no control character, valid
 * escapes) and ``data`` valid UTF-8. Then the answer is ``before + text + after`` for each
 * record, in order, and when ``number`` is given (>= 0), each followed by its decimal
 * number (``number`` for the first record, one more for each next) and ``end``; for any
 * other ``data``, None.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <string.h>

typedef struct {
    const char *text;
    Py_ssize_t size;
} Text;

static int is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Whether p[0:n] is exactly one non-empty JSON string. */
static int is_text(const unsigned char *p, Py_ssize_t n) {
    if (n < 3 || p[0] != '"' || p[1] == '"' || p[n - 1] != '"') {
        return 0;
    }
    Py_ssize_t i = 1;
    while (i < n - 1) {
        unsigned char c = p[i];
        if (c == '"' || c < 0x20) {
            return 0;
        }
        if (c == '\\') {
            if (i + 1 >= n - 1) {
                return 0; /* the closing quote would be escaped */
            }
            unsigned char e = p[i + 1];
            if (e == 'u') {
                if (i + 5 >= n - 1 || !is_hex(p[i + 2]) || !is_hex(p[i + 3]) ||
                    !is_hex(p[i + 4]) || !is_hex(p[i + 5])) {
                    return 0;
                }
                i += 6;
                continue;
            }
            switch (e) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                i += 2;
                continue;
            default:
                return 0;
            }
        }
        i++;
    }
    return 1;
}

/* The start of the last ``needle`` in p[0:n], or NULL. */
static const char *last_of(const char *p, Py_ssize_t n, const char *needle, Py_ssize_t m) {
    if (m == 0 || m > n) {
        return m == 0 ? p + n : NULL;
    }
    for (Py_ssize_t i = n - m; i >= 0; i--) {
        if (p[i] == needle[0] && memcmp(p + i, needle, (size_t)m) == 0) {
            return p + i;
        }
    }
    return NULL;
}

/* The first ``sep`` in p[0:n], or NULL. */
static const char *first_of(const char *p, Py_ssize_t n, const char *sep, Py_ssize_t m) {
    const char *end = p + n;
    while (end - p >= m) {
        const char *at = memchr(p, sep[0], (size_t)(end - p - m + 1));
        if (at == NULL) {
            return NULL;
        }
        if (memcmp(at, sep, (size_t)m) == 0) {
            return at;
        }
        p = at + 1;
    }
    return NULL;
}

/* The decimal digits of n >= 0 written at out (when not NULL); returns how many. */
static Py_ssize_t decimal(long long n, char *out) {
    char digits[24];
    Py_ssize_t k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    for (Py_ssize_t i = 0; out != NULL && i < k; i++) {
        out[i] = digits[k - 1 - i];
    }
    return k;
}

static PyObject *reframe(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, sep, head, tail, before, after;
    Py_buffer end_ = {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL};
    long long number = -1;
    int anchored;
    PyObject *result = NULL;
    Text *texts = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*py*y*y*|Ly*", &data, &sep, &head, &anchored, &tail,
                          &before, &after, &number, &end_)) {
        return NULL;
    }
    const char *p = data.buf, *end = p + data.len;
    const char *s = sep.buf, *h = head.buf, *t = tail.buf;
    Py_ssize_t ns = sep.len, nh = head.len, nt = tail.len;
    Py_ssize_t count = 0, capacity = 0, size = 0;
    int ascii = 1;

    /* The last record's end is looked at first: a read that ends otherwise (most often a
     * stream's last read) is refused without a scan. */
    if (ns == 0 || data.len < ns + nt || memcmp(end - ns, s, (size_t)ns) != 0 ||
        memcmp(end - ns - nt, t, (size_t)nt) != 0) {
        goto refuse;
    }
    while (p < end) {
        const char *stop = first_of(p, end - p, s, ns);
        if (stop == NULL) {
            goto refuse; /* the last sep overlaps the one before: not records */
        }
        Py_ssize_t n = stop - p;
        if (memchr(p, '\n', (size_t)n) != NULL || n < nt || memcmp(stop - nt, t, (size_t)nt)) {
            goto refuse;
        }
        Py_ssize_t body = n - nt;
        const char *text;
        if (anchored) {
            if (body < nh || memcmp(p, h, (size_t)nh) != 0) {
                goto refuse;
            }
            text = p + nh;
        } else {
            const char *at = last_of(p, body, h, nh);
            if (at == NULL) {
                goto refuse;
            }
            text = at + nh;
        }
        Py_ssize_t length = p + body - text;
        if (!is_text((const unsigned char *)text, length)) {
            goto refuse;
        }
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 32;
            Text *more = PyMem_Realloc(texts, (size_t)capacity * sizeof(Text));
            if (more == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            texts = more;
        }
        texts[count].text = text;
        texts[count].size = length;
        count++;
        size += length;
        p = stop + ns;
    }
    for (const unsigned char *q = data.buf; q < (const unsigned char *)end; q++) {
        if (*q & 0x80) {
            ascii = 0;
            break;
        }
    }
    if (!ascii) {
        PyObject *decoded = PyUnicode_DecodeUTF8(data.buf, data.len, "strict");
        if (decoded == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                goto done;
            }
            PyErr_Clear();
            goto refuse;
        }
        Py_DECREF(decoded);
    }
    size += count * (before.len + after.len);
    if (number >= 0) {
        if (number > LLONG_MAX - count) {
            goto refuse;
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            size += decimal(number + i, NULL) + end_.len;
        }
    }
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result != NULL) {
        char *out = PyBytes_AS_STRING(result);
        for (Py_ssize_t i = 0; i < count; i++) {
            memcpy(out, before.buf, (size_t)before.len);
            out += before.len;
            memcpy(out, texts[i].text, (size_t)texts[i].size);
            out += texts[i].size;
            memcpy(out, after.buf, (size_t)after.len);
            out += after.len;
            if (number >= 0) {
                out += decimal(number + i, out);
                memcpy(out, end_.buf, (size_t)end_.len);
                out += end_.len;
            }
        }
    }
    goto done;
refuse:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(texts);
    PyBuffer_Release(&data);
    PyBuffer_Release(&sep);
    PyBuffer_Release(&head);
    PyBuffer_Release(&tail);
    PyBuffer_Release(&before);
    PyBuffer_Release(&after);
    if (end_.obj != NULL) {
        PyBuffer_Release(&end_);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"reframe", reframe, METH_VARARGS,
     "reframe(data, sep, head, anchored, tail, before, after[, number, end]) -> bytes | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_textpath", "A read of text-only records re-framed, in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__textpath(void) { return PyModule_Create(&module); }
