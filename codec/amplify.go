package codec

import (
	"reflect"
	"sync"
)

// elemSizes caches elemSize per type.
var elemSizes sync.Map // reflect.Type -> uintptr

// elemSize returns the size of the largest array, slice or map element
// type reachable from v's type (the memory a decoder allocates per
// element it decodes), at least 16 (an interface or string header).
func elemSize(v any) uintptr {
	t := reflect.TypeOf(v)
	if t == nil {
		return 16
	}
	if s, ok := elemSizes.Load(t); ok {
		return s.(uintptr)
	}
	s := max(largestElem(t, map[reflect.Type]bool{}), 16)
	elemSizes.Store(t, s)
	return s
}

func largestElem(t reflect.Type, seen map[reflect.Type]bool) uintptr {
	if seen[t] {
		return 0
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer:
		return largestElem(t.Elem(), seen)
	case reflect.Slice, reflect.Array:
		e := t.Elem()
		return max(e.Size(), largestElem(e, seen))
	case reflect.Map:
		k, e := t.Key(), t.Elem()
		return max(k.Size()+e.Size(), largestElem(k, seen), largestElem(e, seen))
	case reflect.Struct:
		var m uintptr
		for i := 0; i < t.NumField(); i++ {
			m = max(m, largestElem(t.Field(i).Type, seen))
		}
		return m
	}
	return 0
}
