package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/tagwatch/tagwatch/config"
)

// runHashPassword prints the bcrypt hash of a password read on stdin: what
// web.auth.password wants, with no other tool needed.
func runHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config hash-password", flag.ContinueOnError)
	cost := fs.Int("cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt `cost` (%d to %d); each step doubles the work of a login", bcrypt.MinCost, config.MaxBcryptCost))
	fs.Usage = usageFunc(fs, `Usage: tagwatch config hash-password [--cost N]

Reads a password on stdin and prints its bcrypt hash, for web.auth.password
(or TAGWATCH_WEB_AUTH_PASSWORD, or a file TAGWATCH_WEB_AUTH_PASSWORD_FILE
names). From a terminal it asks twice, without echo; otherwise it reads the
first line:

  tagwatch config hash-password > /etc/tagwatch/password-hash
  printf '%s\n' "$PASSWORD" | tagwatch config hash-password

Flags:
`)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitUsage
	}
	if *cost < bcrypt.MinCost || *cost > config.MaxBcryptCost {
		fmt.Fprintf(stderr, "tagwatch config hash-password: --cost %d: want %d to %d\n", *cost, bcrypt.MinCost, config.MaxBcryptCost)
		return exitUsage
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch config hash-password: %v\n", err)
		return exitUsage
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		fmt.Fprintf(stderr, "tagwatch config hash-password: %v\n", err)
		return exitUsage
	}
	fmt.Fprintln(stdout, string(hash))
	return exitOK
}

// readPassword reads a password from a terminal (twice, without echo) or
// the first line of any other stdin.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the two passwords differ")
		}
		if len(a) == 0 {
			return "", errors.New("the password is empty")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin: give it as the first line")
	}
	return line, nil
}

// runToken prints a new random API token for web.auth.token.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config token", flag.ContinueOnError)
	fs.Usage = usageFunc(fs, `Usage: tagwatch config token

Prints a new random API token (32 random bytes, base64url: 43 characters)
for web.auth.token (or TAGWATCH_WEB_AUTH_TOKEN, or a file
TAGWATCH_WEB_AUTH_TOKEN_FILE names):

  tagwatch config token > /etc/tagwatch/api-token

Flags:
  -h, --help  show this help
`)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitUsage
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	fmt.Fprintln(stdout, base64.RawURLEncoding.EncodeToString(b))
	return exitOK
}
