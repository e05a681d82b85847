#!/usr/bin/env python3
"""Regenerates tests/data/radius_requests.json and radius_responses.json with
FreeRADIUS radclient 3.2.1 as the oracle (apt-get install freeradius-utils):
requests are radclient's packets captured on a UDP socket; responses are built
here with hashlib/hmac and kept only when radclient accepts them.
Usage: python3 radius_vectors.py requests > radius_requests.json
       python3 radius_vectors.py responses > radius_responses.json"""
import socket, subprocess, json, hmac, hashlib, struct
import sys
if sys.argv[1:] == ["requests"]:
    cases = [
      ("short password with Message-Authenticator", "testing123", 'User-Name = "alice", User-Password = "123456", Message-Authenticator = 0x00'),
      ("16-byte password", "testing123", 'User-Name = "bob", User-Password = "0123456789abcdef", Message-Authenticator = 0x00'),
      ("three-block password, long secret", "a much longer shared secret 0123456789", 'User-Name = "carol@example.org", User-Password = "correct horse battery staple,123456 and more", Message-Authenticator = 0x00, NAS-Identifier = "vpn-1", Calling-Station-Id = "192.0.2.7"'),
      ("no Message-Authenticator", "testing123", 'User-Name = "dave", User-Password = "push"'),
      ("State and Proxy-State", "testing123", 'User-Name = "erin", User-Password = "", State = 0x0102030405, Proxy-State = 0xabcdef, Message-Authenticator = 0x00'),
    ]
    out=[]
    for name, secret, attrs in cases:
        s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); port=s.getsockname()[1]; s.settimeout(5)
        p=subprocess.Popen(["radclient","-t","1","-r","1","-x",f"127.0.0.1:{port}","auth",secret],stdin=subprocess.PIPE,stdout=subprocess.PIPE,stderr=subprocess.STDOUT)
        p.stdin.write((attrs+"\n").encode()); p.stdin.close()
        data,_=s.recvfrom(5000)
        p.wait()
        out.append(dict(name=name, secret=secret, attrs=attrs, packet=data.hex()))
        s.close()
    json.dump(out, sys.stdout, indent=1)
else:
    def response(req, secret, code, attrs):
        body=b''.join(bytes([t,len(v)+2])+v for t,v in attrs)
        ma=bytes([80,18])+b'\0'*16
        length=20+len(ma)+len(body)
        pkt=bytes([code,req[1]])+struct.pack('>H',length)+req[4:20]+ma+body
        mac=hmac.new(secret,pkt,hashlib.md5).digest()
        pkt=pkt[:22]+mac+pkt[38:]
        auth=hashlib.md5(pkt+secret).digest()
        return pkt[:4]+auth+pkt[20:]
    cases=[("Access-Accept",2,[]),("Access-Reject with Reply-Message",3,[(18,b"Denied on the phone")]),("Access-Challenge with Reply-Message and State",11,[(18,b"Approve on your phone, or enter a code"),(24,b"opaque-state-0123456789")])]
    out=[]
    secret=b"testing123"
    for name,code,attrs in cases:
        s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); port=s.getsockname()[1]; s.settimeout(5)
        p=subprocess.Popen(["radclient","-t","2","-r","1","-x",f"127.0.0.1:{port}","auth",secret.decode()],stdin=subprocess.PIPE,stdout=subprocess.PIPE,stderr=subprocess.STDOUT)
        p.stdin.write(b'User-Name = "alice", User-Password = "123456", Message-Authenticator = 0x00\n'); p.stdin.close()
        req,addr=s.recvfrom(5000)
        resp=response(req,secret,code,attrs)
        s.sendto(resp,addr)
        o=p.stdout.read().decode(); p.wait()
        print(o, file=sys.stderr)
        out.append(dict(name=name, request=req.hex(), response=resp.hex(), radclient_exit=p.returncode))
    json.dump(out, sys.stdout, indent=1)
