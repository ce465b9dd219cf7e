package config

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// MinTokenLength is the shortest API token tagwatch accepts: a token is
// compared as is, so its length is all that stands against guessing.
const MinTokenLength = 24

// MaxBcryptCost bounds the work of one login: a hash of a higher cost would
// spend seconds of CPU on every wrong password.
const MaxBcryptCost = 14

// howToHash and howToToken say how to make the values web.auth wants
// without any other tool.
const (
	howToHash  = "make one with `tagwatch config hash-password` (it reads the password on stdin)"
	howToToken = "make one with `tagwatch config token`"
)

// envHosts reads TAGWATCH_WEB_HOSTS: names separated by commas. It replaces
// the file's list.
func (c *Config) envHosts(origin Origin, val string) {
	c.Web.Hosts = nil
	c.where["web.hosts"] = origin
	for _, h := range strings.Split(val, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.where[fmt.Sprintf("web.hosts[%d]", len(c.Web.Hosts))] = origin
			c.Web.Hosts = append(c.Web.Hosts, h)
		}
	}
}

// validateWeb checks web.auth (a bcrypt hash, username and password
// together, a long enough token) and web.hosts. No message quotes a
// password or a token: a value in the wrong field may be a secret in clear.
func (c *Config) validateWeb() []error {
	var errs []error
	bad := func(field, fallback, msg string) {
		errs = append(errs, &Error{c.whereOr(field, fallback), field, msg})
	}
	a := c.Web.Auth
	switch {
	case a.Username != "" && a.Password == "":
		bad("web.auth.password", "web.auth.username", "must be defined when username is defined: a bcrypt hash of the password; "+howToHash)
	case a.Username == "" && a.Password != "":
		bad("web.auth.username", "web.auth.password", "must be defined when password is defined: without it the password is ignored and the UI is open")
	}
	if a.Password != "" {
		if msg := checkBcrypt(a.Password); msg != "" {
			bad("web.auth.password", "web.auth", msg)
		}
	}
	if a.Token != "" && len(a.Token) < MinTokenLength {
		bad("web.auth.token", "web.auth", fmt.Sprintf("is %d characters long; use at least %d random characters: %s", len(a.Token), MinTokenLength, howToToken))
	}
	for i, h := range c.Web.Hosts {
		field := fmt.Sprintf("web.hosts[%d]", i)
		if _, err := NormalizeHost(h); err != nil {
			bad(field, "web.hosts", err.Error())
		}
	}
	return errs
}

// checkBcrypt says what is wrong with a web.auth.password, or "".
func checkBcrypt(hash string) string {
	if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
		return "must be a bcrypt hash ($2a$…, $2b$… or $2y$…), not a password in clear; " + howToHash
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil || len(hash) != 60 {
		return "is not a whole bcrypt hash (60 characters, $2y$10$…); " + howToHash
	}
	if cost > MaxBcryptCost {
		return fmt.Sprintf("has bcrypt cost %d: each login would take seconds of CPU; use a cost of at most %d; %s", cost, MaxBcryptCost, howToHash)
	}
	return ""
}

// NormalizeHost checks one web.hosts entry, a host name or IP address as a
// browser sends it in the Host header without the port, and returns it
// lowercased without a trailing dot or IPv6 brackets.
func NormalizeHost(h string) (string, error) {
	h = strings.ToLower(strings.TrimSpace(h))
	if h == "" {
		return "", errors.New("is empty")
	}
	if strings.Contains(h, "://") || strings.ContainsAny(h, "/?#@") {
		// Not quoted: it may be a URL with a password in it.
		return "", errors.New("is not a host name: write the name alone (tagwatch.example.com), without scheme, user or path")
	}
	if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
		return ip.String(), nil
	}
	if _, _, err := net.SplitHostPort(h); err == nil {
		return "", fmt.Errorf("%q has a port: write the name alone; any port is accepted", h)
	}
	h = strings.TrimSuffix(h, ".")
	if len(h) > 253 {
		return "", errors.New("is longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%q is not a host name: each dot-separated part is 1 to 63 characters", h)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				if r > 127 {
					return "", fmt.Errorf("%q is not a host name: write an international name in its xn-- form, as browsers send it", h)
				}
				return "", fmt.Errorf("%q is not a host name: it may hold a-z, 0-9, - and dots", h)
			}
		}
	}
	return h, nil
}
