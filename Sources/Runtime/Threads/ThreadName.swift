import CRuntimeShims

func dmanoelSetThreadName(_ name: String) {
    dmanoel_set_thread_name(name)
}
