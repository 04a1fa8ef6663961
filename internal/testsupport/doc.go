// Package testsupport is what the project's tests share: one embedded
// NATS server helper ([NATS], [Connect]), one polling helper
// ([Eventually] and its variants) and one fake clock ([Clock]). Every
// test package uses these instead of a copy of its own, so that a fix to
// any of them lands once.
//
// It imports none of the project's packages, so that the tests of any
// package can use it without an import cycle; what belongs to one
// package's wire or storage contract (creating the events stream, say)
// stays in that package's tests.
package testsupport
