/* limits: the file parser, the matching of identities, dollars, windows and budget periods. */
#include "limits_file.h"

#include <string.h>

#include "tap.h"

static int parse(struct limits *l, const char *text, struct buf *err)
{
	buf_reset(err);
	return limits_parse(l, text, strlen(text), err);
}

static void test_parse(void)
{
	struct limits l;
	struct buf err;
	buf_init(&err, 4096);
	const char *text = "# comment\n"
			   "*  rpm=20 tpm=40000 concurrent=2 usd_per_day=0.50\n"
			   "server usd_per_day=20 usd_per_month=300\n"
			   "\n"
			   "key:alice   usd_per_month=100   # a team lead\n"
			   "key:team-*  usd_per_month=20 rpm=none\n"
			   "addr:10.0.0.0/8 rpm=100\n"
			   "addr:2001:db8::/32 concurrent=1\n"
			   "user:bob usd_per_day=none";
	tap_is_int(parse(&l, text, &err), 0, "a full file parses");
	tap_is_int(l.n, 5, "five rules besides * and server");
	tap_is_int(l.def.v[LIMITS_USD_DAY], 500000, "$0.50 is 500000 micro-dollars");
	tap_is_int(l.server.v[LIMITS_USD_MONTH], 300000000, "the server's monthly budget");
	struct limits_set s;
	limits_for(&l, "key:alice", &s);
	tap_is_int(s.v[LIMITS_USD_MONTH], 100000000, "alice's own monthly budget");
	tap_is_int(s.v[LIMITS_RPM], 20, "alice inherits the default rpm");
	limits_for(&l, "key:team-x", &s);
	tap_is_int(s.v[LIMITS_RPM], LIMITS_NONE, "none lifts a default (prefix pattern)");
	limits_for(&l, "addr:10.1.2.3", &s);
	tap_is_int(s.v[LIMITS_RPM], 100, "an IPv4 range matches");
	limits_for(&l, "addr:11.1.2.3", &s);
	tap_is_int(s.v[LIMITS_RPM], 20, "outside the range: the default");
	limits_for(&l, "addr:2001:db8:1::5", &s);
	tap_is_int(s.v[LIMITS_CONCURRENT], 1, "an IPv6 range matches");
	limits_for(&l, "user:bob", &s);
	tap_is_int(s.v[LIMITS_USD_DAY], LIMITS_NONE, "user:bob has no daily budget");
	limits_for(&l, "user:bobby", &s);
	tap_is_int(s.v[LIMITS_USD_DAY], 500000, "an exact pattern is exact");
	tap_ok(limits_any(&l), "limits_any");
	limits_release(&l);

	static const struct {
		const char *text, *why;
	} bad[] = {
		{"* rpm=ten\n", "line 1: a limit is a whole number, or none"},
		{"\n* usd_per_day=0.1234567\n", "line 2: a budget is dollars"},
		{"* rpm=1 rpm=2\n", "line 1: a limit is named twice"},
		{"bob rpm=1\n", "line 1: a pattern is *, server"},
		{"key:a*b rpm=1\n", "line 1: '*' may only end"},
		{"addr:10.0.0.0/33 rpm=1\n", "line 1: not an address range"},
		{"* burst=1\n", "line 1: unknown limit"},
		{"* rpm\n", "line 1: expected name=value"},
		{"* usd_per_day=-1\n", "line 1: a budget"},
		{"* rpm=1\0\n", "line 1: NUL byte"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = strlen(bad[i].text) + (strstr(bad[i].why, "NUL") ? 2 : 0);
		buf_reset(&err);
		int rc = limits_parse(&l, bad[i].text, len, &err);
		tap_ok(rc < 0 && strncmp(buf_cstr(&err), bad[i].why, strlen(bad[i].why)) == 0,
		       "refused: %s (%s)", bad[i].why, buf_cstr(&err));
	}
	limits_empty(&l);
	tap_ok(!limits_any(&l), "no file: no limits");
	buf_release(&err);
}

static void test_usd(void)
{
	long long m;
	char t[32];
	tap_ok(limits_parse_usd("12", 2, &m) == 0 && m == 12000000, "12 dollars");
	tap_ok(limits_parse_usd("0.000001", 8, &m) == 0 && m == 1, "one micro-dollar");
	tap_ok(limits_parse_usd(".5", 2, &m) < 0, ".5 needs its 0");
	tap_ok(limits_parse_usd("5.", 2, &m) < 0, "5. needs decimals");
	tap_ok(limits_parse_usd("1000000001", 10, &m) < 0, "over a billion dollars");
	limits_format_usd(1500000, t, sizeof t);
	tap_is_str(t, "1.50", "format: at least two decimals");
	limits_format_usd(1234567, t, sizeof t);
	tap_is_str(t, "1.234567", "format: exact");
}

static void test_periods(void)
{
	/* 2026-02-28T23:59:30Z */
	time_t t = 1772323170;
	tap_is_int(limits_bucket(LIMITS_MINUTE, t), t / 60, "minute bucket");
	tap_is_int(limits_bucket(LIMITS_DAY, t), 20260228, "day bucket, UTC");
	tap_is_int(limits_bucket(LIMITS_MONTH, t), 202602, "month bucket");
	tap_is_int(limits_period_end(LIMITS_MINUTE, t) - t, 30, "the minute ends in 30 s");
	tap_is_int(limits_period_end(LIMITS_DAY, t) - t, 30, "the day ends in 30 s");
	tap_is_int(limits_period_end(LIMITS_MONTH, t) - t, 30, "February 2026 ends with its 28th");
	/* 2024-02-28T12:00:00Z: a leap year */
	t = 1709121600;
	tap_is_int(limits_period_end(LIMITS_MONTH, t) - t, 36 * 3600, "leap February: 29 days");
	/* 2026-12-31T00:00:00Z: the year rolls over */
	t = 1798675200;
	tap_is_int(limits_period_end(LIMITS_MONTH, t), 1798761600, "December ends at New Year");
	tap_is_int(limits_bucket(LIMITS_DAY, 1798761600), 20270101, "New Year's day");
	tap_is_int(limits_period_of(LIMITS_USD_MONTH), LIMITS_MONTH, "a monthly budget's period");
}

static void test_addr_list(void)
{
	tap_ok(limits_addr_listed("127.0.0.1, 10.0.0.0/8 ::1", "10.9.8.7"), "in a range");
	tap_ok(limits_addr_listed("127.0.0.1, 10.0.0.0/8 ::1", "::1"), "IPv6 loopback");
	tap_ok(!limits_addr_listed("127.0.0.1", "127.0.0.2"), "not listed");
	tap_ok(!limits_addr_listed("", "127.0.0.1"), "an empty list");
	tap_ok(limits_check_addr_list("10.0.0.0/8, ::1") == NULL, "a good list");
	tap_ok(limits_check_addr_list("proxy.example") != NULL, "a name is refused");
}

int main(void)
{
	test_parse();
	test_usd();
	test_periods();
	test_addr_list();
	return tap_done();
}
